from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from budapp.core.components import components
from budapp.core.deps import SessionDep
from budapp.organizations.service import OrganizationService


async def _service(request: Request, session: SessionDep) -> OrganizationService:
    return OrganizationService(session, components(request).references)


OrganizationServiceDep = Annotated[OrganizationService, Depends(_service)]
