from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from budapp.audit.chain import GENESIS_HASH, canonical_json
from budapp.audit.models import AuditRecord
from budapp.audit.recorder import AuditEntry, append
from budapp.audit.repository import AuditRepository, Break
from budapp.audit.schemas import (
    AuditExportQuery,
    AuditFilter,
    AuditPageQuery,
    AuditRead,
    BrokenRecord,
    VerifyRequest,
    VerifyResult,
)
from budapp.core.auth import Principal, TenantScope
from budapp.core.errors import NotFound
from budapp.core.origin import Actor, actor_of, origin_of

VERIFY_CHUNK = 100_000
EXPORT_BATCH = 1_000
EXPORT_COLUMNS = list(AuditRead.model_fields)

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class CursorPage:
    items: list[AuditRead]
    next_cursor: int | None
    per_page: int


async def record_event(
    session: AsyncSession, entry: AuditEntry, actor: Actor | None = None
) -> None:
    """Records an event that is not a row change (a login, a failed login, a logout) in the
    caller's unit of work, on the same chain as every change."""
    sync_session = session.sync_session
    who = actor or actor_of(sync_session)
    origin = origin_of(sync_session)

    def write(sync: Session) -> None:
        append(sync.connection(), [entry], who, origin)

    await session.run_sync(write)


class AuditService:
    def __init__(self, session: AsyncSession, factory: async_sessionmaker[AsyncSession]) -> None:
        self.repository = AuditRepository(session)
        self.factory = factory

    async def page(self, principal: Principal, query: AuditPageQuery) -> CursorPage:
        scope = _scope(principal, query)
        rows = await self.repository.page(
            scope, query, before=query.cursor, limit=query.per_page + 1
        )
        more = len(rows) > query.per_page
        items = [AuditRead.model_validate(row) for row in rows[: query.per_page]]
        next_cursor = items[-1].sequence if more and items else None
        return CursorPage(items, next_cursor, query.per_page)

    async def get(self, principal: Principal, record_id: uuid.UUID) -> AuditRecord:
        """A record of the caller's organisation (any, for super admins)."""
        record = await self.repository.get(principal.scope, record_id)
        if record is None:
            raise NotFound("audit record", record_id)
        return record

    def export(self, principal: Principal, query: AuditExportQuery) -> AsyncIterator[str]:
        """Streams matching records oldest first, in its own read-only session: the response
        outlives the request's unit of work."""
        scope = _scope(principal, query)
        return self._export(scope, query)

    async def _export(self, scope: TenantScope, query: AuditExportQuery) -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
        if query.format == "csv":
            writer.writeheader()
            yield _drain(buffer)
        after = 0
        async with self.factory() as session:
            repository = AuditRepository(session)
            while batch := await repository.oldest_first(
                scope, query, after=after, limit=EXPORT_BATCH
            ):
                after = batch[-1].sequence
                rows = [
                    AuditRead.model_validate(record).model_dump(mode="json") for record in batch
                ]
                if query.format == "jsonl":
                    yield "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
                else:
                    for row in rows:
                        # The stored, hashed form: an export can be checked outside budapp.
                        writer.writerow({**row, "details": canonical_json(row["details"])})
                    yield _drain(buffer)

    async def verify(
        self, request: VerifyRequest, progress: Progress | None = None
    ) -> VerifyResult:
        async with self.factory() as session:
            return await ChainCheck(AuditRepository(session), request, progress).run()


class ChainCheck:
    """Verifies the chain, or the range [from_sequence, to_sequence] of it, a chunk of
    records per query, the hashing done by the database."""

    def __init__(
        self, repository: AuditRepository, request: VerifyRequest, progress: Progress | None
    ) -> None:
        self.repository = repository
        self.start = request.from_sequence or 1
        self.end = request.to_sequence
        self.progress = progress
        self.checked = 0

    async def run(self) -> VerifyResult:
        head = await self.repository.head()
        end = head.last_sequence if self.end is None else self.end
        total = max(end - self.start + 1, 0)
        last: int | None = None
        for low in range(self.start, end + 1, VERIFY_CHUNK):
            high = min(low + VERIFY_CHUNK - 1, end)
            result = await self.repository.check_range(low, high)
            self.checked += result.passed
            if result.broken is not None:
                return self._result(result.broken)
            if result.last_sequence != high:
                first_missing = (result.last_sequence or low - 1) + 1
                return self._result(
                    Break(first_missing, None, f"records {first_missing} to {high} are missing")
                )
            last = high
            if self.progress:
                self.progress(self.checked, total)
        if self.end is None and (
            broken := await self._check_head(head.last_sequence, head.last_hash)
        ):
            return self._result(broken)
        return self._result(None, last)

    async def _check_head(self, head_sequence: int, head_hash: str) -> Break | None:
        """Whole-chain checks: nothing before 1 or after the head, and the head names the
        last record (else records were cut from the end, or forged after it)."""
        low, high = await self.repository.sequence_bounds()
        if low is not None and low < 1:
            return Break(low, None, "a record lies before the start of the chain")
        if high is not None and high > head_sequence:
            return Break(head_sequence + 1, None, "records lie after the chain head")
        last_hash = await self.repository.hash_of(head_sequence) if head_sequence else GENESIS_HASH
        if last_hash != head_hash:
            return Break(head_sequence, None, "the chain head does not match the last record")
        return None

    def _result(self, broken: Break | None, last: int | None = None) -> VerifyResult:
        return VerifyResult(
            ok=broken is None,
            checked=self.checked,
            first_sequence=self.start if self.checked else None,
            last_sequence=last if self.checked and broken is None else None,
            first_broken=BrokenRecord(
                sequence=broken.sequence, record_id=broken.record_id, reason=broken.reason
            )
            if broken
            else None,
        )


def _scope(principal: Principal, query: AuditFilter) -> TenantScope:
    # An organization_id filter only narrows: the caller's scope still bounds what is read,
    # so an org admin naming another organization simply finds nothing.
    del query
    return principal.scope


def _drain(buffer: io.StringIO) -> str:
    value = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return value


__all__ = ["AuditEntry", "AuditRecord", "AuditService", "CursorPage", "record_event"]
