"""Retention of the per-call usage rows: every few minutes a sweep deletes the calls older than
BUDAPP_USAGE_RETENTION_DAYS, a bounded batch per statement and transaction, so that neither the
table nor one delete grows without bound. The hourly and daily sums are kept forever. Every
process sweeps; two sweeps at once only find fewer rows left to delete."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.core.background import BackgroundTask
from budapp.core.components import Components
from budapp.core.db import utcnow
from budapp.core.logging import get_logger
from budapp.usage import metrics
from budapp.usage.repository import UsageRepository

log = get_logger("budapp.gateway")


class UsageRetention:
    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        *,
        days: int,
        every_seconds: float = 300.0,
        batch_size: int = 5000,
    ) -> None:
        self._factory = factory
        self._keep = timedelta(days=days)
        self._every = every_seconds
        self._batch = batch_size
        self._task = BackgroundTask("gateway-usage-retention")

    async def start(self) -> None:
        """Does nothing when retention is off (0 days: calls are kept forever)."""
        if self._keep:
            self._task.start(self._run)

    async def close(self) -> None:
        await self._task.stop()

    async def sweep(self, now: datetime | None = None) -> int:
        """Deletes every call older than the retention period; returns how many."""
        cutoff = (now or utcnow()) - self._keep
        deleted = 0
        while True:
            async with self._factory() as session:
                batch = await UsageRepository(session).delete_records_before(cutoff, self._batch)
                await session.commit()
            deleted += batch
            metrics.USAGE_ROWS_DELETED.inc(batch)
            if batch < self._batch:
                return deleted
            # One batch per transaction, letting requests run in between.
            await asyncio.sleep(0)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                deleted = await self.sweep()
            except Exception as exc:
                log.warning("usage_retention_failed", error=str(exc))
                continue
            if deleted:
                log.info("usage_records_deleted", count=deleted, older_than_days=self._keep.days)


def usage_retention(components: Components) -> UsageRetention:
    """Deletes per-call usage rows past BUDAPP_USAGE_RETENTION_DAYS."""
    return UsageRetention(components.session_factory, days=components.settings.usage_retention_days)
