from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from budapp.audit.dependencies import AuditRecordReader, AuditServiceDep
from budapp.audit.schemas import (
    AuditExportQuery,
    AuditPageQuery,
    AuditRead,
    VerifyRequest,
    VerifyResult,
)
from budapp.core.auth import OrgAdmin, SuperAdmin
from budapp.core.envelope import Envelope
from budapp.core.errors import Forbidden, NotFound, Unauthorized
from budapp.core.http import errors

router = APIRouter(prefix="/audit", tags=["audit"], responses=errors(Unauthorized, Forbidden))

_MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


@router.get("")
async def list_records(
    principal: OrgAdmin, service: AuditServiceDep, query: Annotated[AuditPageQuery, Query()]
) -> Envelope[list[AuditRead]]:
    """Newest first. Org admins read their organization's records, super admins all. Keyset
    pagination: pass `meta.next_cursor` as `cursor` for the next page."""
    page = await service.page(principal, query)
    meta = {"per_page": page.per_page, "next_cursor": page.next_cursor}
    return Envelope(data=page.items, meta=meta)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {media: {} for media in _MEDIA.values()}}},
)
async def export_records(
    principal: OrgAdmin, service: AuditServiceDep, query: Annotated[AuditExportQuery, Query()]
) -> StreamingResponse:
    """The matching records, oldest first, streamed as JSON lines or CSV."""
    return StreamingResponse(
        service.export(principal, query),
        media_type=_MEDIA[query.format],
        headers={"Content-Disposition": f'attachment; filename="audit.{query.format}"'},
    )


@router.post("/verify")
async def verify_chain(
    _: SuperAdmin, service: AuditServiceDep, body: VerifyRequest | None = None
) -> Envelope[VerifyResult]:
    """Recomputes every link of the chain (or of a sequence range) and names the first record
    that does not hold."""
    return Envelope(data=await service.verify(body or VerifyRequest()))


@router.get("/{record_id}", responses=errors(NotFound))
async def get_record(record: AuditRecordReader) -> Envelope[AuditRead]:
    return Envelope(data=AuditRead.model_validate(record))
