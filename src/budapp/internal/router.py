from __future__ import annotations

from fastapi import APIRouter

from budapp.auth.dependencies import IntrospectionServiceDep
from budapp.auth.schemas import Introspection, IntrospectionRequest
from budapp.core.envelope import Envelope
from budapp.core.errors import Unauthorized
from budapp.core.http import errors
from budapp.core.internal import InternalService

router = APIRouter(prefix="/internal", tags=["internal"])


@router.get("/health", responses=errors(Unauthorized))
async def health(caller: InternalService) -> Envelope[dict[str, str]]:
    """Liveness as seen by a sibling service that holds the service token."""
    return Envelope(data={"status": "ok", "authenticated_via": caller.via})


@router.post("/auth/introspect", responses=errors(Unauthorized))
async def introspect(
    body: IntrospectionRequest, caller: InternalService, service: IntrospectionServiceDep
) -> Envelope[Introspection]:
    """Who a user's bearer token stands for (budapp's own tokens and provider tokens alike),
    so that sibling services need not validate tokens themselves. An invalid token is
    `active: false`, not an error."""
    del caller
    return Envelope(data=await service.introspect(body.token.get_secret_value()))
