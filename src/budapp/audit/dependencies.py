from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from budapp.audit.models import AuditRecord
from budapp.audit.service import AuditService
from budapp.core.auth import OrgAdmin
from budapp.core.components import components
from budapp.core.deps import SessionDep


async def _service(request: Request, session: SessionDep) -> AuditService:
    return AuditService(session, components(request).session_factory)


AuditServiceDep = Annotated[AuditService, Depends(_service)]


async def _record(
    record_id: uuid.UUID, principal: OrgAdmin, service: AuditServiceDep
) -> AuditRecord:
    return await service.get(principal, record_id)


# Org admins, on a record of their organisation's trail (any, for super admins).
AuditRecordReader = Annotated[AuditRecord, Depends(_record)]
