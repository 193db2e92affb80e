"""Management routes of the gateway (budapp's envelope): the usage it metered. The OpenAI-
compatible routes themselves are in `routes.py`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from budapp.core.auth import CurrentPrincipal
from budapp.core.envelope import PageEnvelope
from budapp.core.errors import Forbidden, NotFound, Unauthorized
from budapp.core.http import errors
from budapp.usage.dependencies import UsageServiceDep
from budapp.usage.schemas import UsageFilter, UsageRead

router = APIRouter(tags=["usage"], responses=errors(Unauthorized, Forbidden, NotFound))


@router.get("/usage")
async def list_usage(
    principal: CurrentPrincipal,
    service: UsageServiceDep,
    filters: Annotated[UsageFilter, Query()],
) -> PageEnvelope[UsageRead]:
    """Sums per hour or day, per project, API key, router and model, newest first. Calls are
    written in batches a few seconds after they end."""
    return (await service.page(principal, filters)).envelope()
