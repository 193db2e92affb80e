"""Authentication of sibling services (cluster, metrics, notification services) on the
`/internal/*` routes: a shared token in `X-API-Token`, or in `dapr-api-token` when a Dapr
sidecar forwards the call. User tokens open nothing here, and this token opens nothing else."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from budapp.core.components import components
from budapp.core.deps import SessionDep
from budapp.core.errors import Unauthorized
from budapp.core.origin import Actor, set_actor


@dataclass(frozen=True, slots=True)
class ServiceCaller:
    # How the caller proved itself: "x-api-token" or "dapr-api-token".
    via: str

    @property
    def actor(self) -> Actor:
        return Actor("service", None, None, self.via)


def _matches(presented: str | None, expected: bytes) -> bool:
    # Constant time: the comparison must not reveal how much of a guess was right.
    return presented is not None and hmac.compare_digest(presented.encode(), expected)


async def internal_service(
    request: Request,
    session: SessionDep,
    x_api_token: Annotated[str | None, Header(alias="X-API-Token", include_in_schema=False)] = None,
    dapr_api_token: Annotated[
        str | None, Header(alias="dapr-api-token", include_in_schema=False)
    ] = None,
) -> ServiceCaller:
    configured = components(request).settings.app_api_token
    if configured is None:
        raise Unauthorized("Internal routes are disabled: BUDAPP_APP_API_TOKEN is not set")
    expected = configured.get_secret_value().encode()
    if _matches(x_api_token, expected):
        caller = ServiceCaller("x-api-token")
    elif _matches(dapr_api_token, expected):
        caller = ServiceCaller("dapr-api-token")
    else:
        raise Unauthorized("A valid service token (X-API-Token) is required")
    set_actor(session.sync_session, caller.actor)
    return caller


InternalService = Annotated[ServiceCaller, Depends(internal_service)]
