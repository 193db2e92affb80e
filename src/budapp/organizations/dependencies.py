from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from budapp.core.deps import SessionDep
from budapp.organizations.service import OrganizationService


async def _service(request: Request, session: SessionDep) -> OrganizationService:
    return OrganizationService(session, request.app.state.references)


OrganizationServiceDep = Annotated[OrganizationService, Depends(_service)]
