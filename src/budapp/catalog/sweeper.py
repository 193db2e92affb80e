"""The storage sweeper: deletes stored objects that nothing needs any more.

- Orphans: objects under a domain's prefix (`models/`, `datasets/`) that no row points at. An
  upload writes its objects before its rows commit, so a failed commit or a crash leaves them
  behind. Only objects older than the grace period go: an upload still in flight is younger.
- The files of models and datasets soft-deleted longer ago than the retention period. The rows
  stay (the record of what was there); the model or dataset is marked `files_purged_at` through
  the ORM, so the audit trail records it and the next run does not look at it again.
- Partial uploads abandoned by a crashed writer (the local `.incoming/` files, S3 multipart
  uploads), once older than the grace period.

Every replica of `budapp serve` may sweep: deleting an object that another sweep (or the
owner) already deleted succeeds, and a row marked twice only records the same fact again.
One object that cannot be deleted is counted and reported; the run goes on, and a deleted
model or dataset with such an object stays unmarked, to be retried by the next run."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.adapters.storage import ListedObject, ObjectStorage, StorageError
from budapp.core.background import BackgroundTask
from budapp.core.components import Key
from budapp.core.db import session_scope, utcnow
from budapp.core.logging import get_logger

log = get_logger("budapp.storage")

# A fresh replica sweeps this soon after start (or after one interval, if shorter), so
# replicas restarted more often than the interval still sweep.
FIRST_SWEEP_DELAY_SECONDS = 600.0


class StoredFiles(Protocol):
    """A domain whose rows point at the objects under one key prefix."""

    prefix: str

    async def referenced(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        """Those of `keys` that a row (live or soft-deleted) points at, in one query."""
        ...

    async def deleted_with_files(
        self,
        session: AsyncSession,
        deleted_before: datetime,
        *,
        after: uuid.UUID | None,
        limit: int,
    ) -> list[tuple[uuid.UUID, list[str]]]:
        """Owners soft-deleted before the cutoff and not yet purged, by id after `after`."""
        ...

    async def mark_purged(
        self, session: AsyncSession, owner_ids: Sequence[uuid.UUID], at: datetime
    ) -> None: ...


@dataclass(slots=True)
class SweepReport:
    """What one run did; on a dry run, what it would have done."""

    dry_run: bool = False
    seen: int = 0  # objects listed
    orphans: int = 0
    purged: int = 0  # objects of models and datasets deleted past their retention
    abandoned: int = 0  # partial uploads
    bytes_freed: int = 0
    errors: int = 0
    first_error: str | None = None

    @property
    def deleted(self) -> int:
        return self.orphans + self.purged + self.abandoned

    def failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"{what}: {exc}"


class StorageSweeper:
    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        storage: ObjectStorage,
        owners: Sequence[StoredFiles],
        *,
        grace: timedelta,
        retention: timedelta | None,
        every_seconds: float = 0.0,
        page_size: int = 1000,
        purge_batch: int = 100,
    ) -> None:
        self._factory = factory
        self._storage = storage
        self._owners = owners
        self._grace = grace
        self._retention = retention
        self._every = every_seconds
        self._page_size = page_size
        self._purge_batch = purge_batch
        self._task = BackgroundTask("storage-sweeper")

    async def start(self) -> None:
        """Sweeps every `every_seconds` in the background; does nothing when that is 0."""
        if self._every > 0:
            self._task.start(self._run)

    async def close(self) -> None:
        await self._task.stop()

    async def sweep(
        self,
        *,
        now: datetime | None = None,
        dry_run: bool = False,
        listed: Callable[[int], None] | None = None,
    ) -> SweepReport:
        """One run. `listed` hears the running count of objects listed, a page at a time."""
        now = now or utcnow()
        started = time.monotonic()
        report = SweepReport(dry_run=dry_run)
        for owner in self._owners:
            if self._retention is not None:
                await self._purge_deleted(owner, now - self._retention, now, report)
            await self._delete_orphans(owner, now - self._grace, report, listed)
        await self._remove_abandoned(now - self._grace, report)
        log.info(
            "storage_swept",
            dry_run=dry_run,
            seen=report.seen,
            deleted=report.deleted,
            orphans=report.orphans,
            purged=report.purged,
            abandoned=report.abandoned,
            bytes_freed=report.bytes_freed,
            errors=report.errors,
            first_error=report.first_error,
            seconds=round(time.monotonic() - started, 3),
        )
        return report

    async def _delete_orphans(
        self,
        owner: StoredFiles,
        cutoff: datetime,
        report: SweepReport,
        listed: Callable[[int], None] | None,
    ) -> None:
        try:
            async for page in _pages(self._storage.list(owner.prefix), self._page_size):
                report.seen += len(page)
                if listed is not None:
                    listed(report.seen)
                old = [item for item in page if item.modified < cutoff]
                if not old:
                    continue
                async with self._factory() as session:
                    referenced = await owner.referenced(session, [item.key for item in old])
                for item in old:
                    if item.key not in referenced and await self._delete(item.key, report):
                        report.orphans += 1
                        report.bytes_freed += item.size
        except StorageError as exc:
            report.failed(f"listing {owner.prefix}/", exc)

    async def _purge_deleted(
        self, owner: StoredFiles, cutoff: datetime, now: datetime, report: SweepReport
    ) -> None:
        after: uuid.UUID | None = None
        while True:
            async with self._factory() as session:
                batch = await owner.deleted_with_files(
                    session, cutoff, after=after, limit=self._purge_batch
                )
            if not batch:
                return
            purged = [owner_id for owner_id, keys in batch if await self._purge(keys, report)]
            if purged and not report.dry_run:
                async with session_scope(self._factory) as session:
                    await owner.mark_purged(session, purged, now)
            after = batch[-1][0]

    async def _purge(self, keys: list[str], report: SweepReport) -> bool:
        """Deletes the objects; True when none is left."""
        clean = True
        for key in keys:
            try:
                size = await self._storage.size_of(key)
            except (StorageError, OSError) as exc:
                report.failed(key, exc)
                clean = False
                continue
            if size is None:
                continue  # already gone: a previous run, or another replica
            if await self._delete(key, report):
                report.purged += 1
                report.bytes_freed += size
            else:
                clean = False
        return clean

    async def _delete(self, key: str, report: SweepReport) -> bool:
        if report.dry_run:
            return True
        try:
            await self._storage.delete(key)
        except (StorageError, OSError) as exc:
            report.failed(key, exc)
            return False
        return True

    async def _remove_abandoned(self, cutoff: datetime, report: SweepReport) -> None:
        prefixes = [owner.prefix for owner in self._owners]
        try:
            found = await self._storage.remove_abandoned_uploads(
                cutoff, prefixes=prefixes, dry_run=report.dry_run
            )
        except StorageError as exc:
            report.failed("abandoned uploads", exc)
            return
        report.abandoned += found.removed
        report.bytes_freed += found.bytes
        report.errors += found.errors
        report.first_error = report.first_error or found.first_error

    async def _run(self) -> None:
        await asyncio.sleep(min(self._every, FIRST_SWEEP_DELAY_SECONDS))
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                # The database was unreachable, say: the next run tries again.
                log.warning("storage_sweep_failed", error=str(exc))
            await asyncio.sleep(self._every)


async def _pages(
    objects: AsyncIterator[ListedObject], size: int
) -> AsyncIterator[list[ListedObject]]:
    page: list[ListedObject] = []
    async for item in objects:
        page.append(item)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


STORAGE_SWEEPER: Key[StorageSweeper] = Key("storage sweeper")
