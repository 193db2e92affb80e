from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from budapp.audit.service import AuditService
from budapp.core.components import components
from budapp.core.deps import SessionDep


async def _service(request: Request, session: SessionDep) -> AuditService:
    return AuditService(session, components(request).session_factory)


AuditServiceDep = Annotated[AuditService, Depends(_service)]
