"""Usage metering: each call is appended to a buffer in memory (a list append on the hot
path); a background task writes the buffer in batches, with the hourly and daily sums, and a
graceful shutdown writes what is left."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.core.background import BackgroundTask
from budapp.core.components import Components, Key
from budapp.core.logging import get_logger
from budapp.usage import metrics
from budapp.usage.models import UsageDaily, UsageHourly
from budapp.usage.repository import UsageRepository

log = get_logger("budapp.gateway")


@dataclass(slots=True)
class Call:
    at: datetime
    organization_id: uuid.UUID
    project_id: uuid.UUID
    api_key_id: uuid.UUID
    user_id: uuid.UUID | None
    router_id: uuid.UUID | None
    router: str
    target: str | None
    endpoint_id: uuid.UUID | None
    model: str
    route: str
    stream: bool
    status: int
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    latency_ms: float
    ttft_ms: float | None


_FIELDS = tuple(f.name for f in fields(Call))


def _row(call: Call) -> dict[str, Any]:
    # Not dataclasses.asdict: it deep-copies every value, which showed in profiles.
    return {name: getattr(call, name) for name in _FIELDS}


class UsageMeter:
    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        *,
        flush_seconds: float,
        batch_size: int,
        max_buffered: int,
    ) -> None:
        self._factory = factory
        self._flush_every = flush_seconds
        self._batch = batch_size
        self._max = max_buffered
        self._buffer: list[Call] = []
        self._wake = asyncio.Event()
        self._task = BackgroundTask("gateway-usage-meter")
        self._lock = asyncio.Lock()

    def record(self, call: Call) -> None:
        self._buffer.append(call)
        if len(self._buffer) >= self._batch:
            self._wake.set()

    async def start(self) -> None:
        self._task.start(self._run)

    async def close(self) -> None:
        await self._task.stop()
        await self.flush()

    async def flush(self) -> int:
        """Writes everything buffered; returns how many calls were written."""
        async with self._lock:
            written = 0
            while self._buffer:
                batch, self._buffer = (
                    self._buffer[: self._batch * 10],
                    self._buffer[self._batch * 10 :],
                )
                try:
                    await self._write(batch)
                except Exception:
                    # Keep the calls for the next try, within bounds: a long outage must not
                    # exhaust memory.
                    self._buffer[:0] = batch
                    overflow = len(self._buffer) - self._max
                    if overflow > 0:
                        del self._buffer[:overflow]
                        metrics.METER_DROPPED.inc(overflow)
                    raise
                written += len(batch)
                # One batch per transaction, letting requests run in between.
                await asyncio.sleep(0)
            return written

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._flush_every)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:
                log.warning("usage_flush_failed", error=str(exc), buffered=len(self._buffer))
                await asyncio.sleep(self._flush_every)

    async def _write(self, calls: list[Call]) -> None:
        rows = [_row(call) for call in calls]
        async with self._factory() as session:
            repository = UsageRepository(session)
            await repository.add_records(rows)
            await repository.add_to_aggregates(UsageHourly, _sums(calls, hourly=True))
            await repository.add_to_aggregates(UsageDaily, _sums(calls, hourly=False))
            await session.commit()


def _sums(calls: list[Call], *, hourly: bool) -> list[dict[str, Any]]:
    sums: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(dict)
    for call in calls:
        if hourly:
            bucket = call.at.replace(minute=0, second=0, microsecond=0)
        else:
            bucket = call.at.replace(hour=0, minute=0, second=0, microsecond=0)
        key = (bucket, call.project_id, call.api_key_id, call.router, call.model)
        row = sums[key]
        if not row:
            row.update(
                bucket=bucket,
                organization_id=call.organization_id,
                project_id=call.project_id,
                api_key_id=call.api_key_id,
                router=call.router,
                model=call.model,
                requests=0,
                errors=0,
                prompt_tokens=0,
                completion_tokens=0,
                latency_ms_sum=0.0,
                ttft_ms_sum=0.0,
                ttft_count=0,
            )
        row["requests"] += 1
        row["errors"] += 1 if call.status >= 400 else 0
        row["prompt_tokens"] += call.prompt_tokens
        row["completion_tokens"] += call.completion_tokens
        row["latency_ms_sum"] += call.latency_ms
        if call.ttft_ms is not None:
            row["ttft_ms_sum"] += call.ttft_ms
            row["ttft_count"] += 1
    return list(sums.values())


USAGE_METER: Key[UsageMeter] = Key("usage meter")


def usage_meter(components: Components) -> UsageMeter:
    """Writes the gateway's metered calls in batches."""
    settings = components.settings
    return components.provide(
        USAGE_METER,
        UsageMeter(
            components.session_factory,
            flush_seconds=settings.gateway_usage_flush_seconds,
            batch_size=settings.gateway_usage_batch_size,
            max_buffered=settings.gateway_usage_max_buffered,
        ),
    )
