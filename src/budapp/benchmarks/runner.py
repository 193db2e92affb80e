"""A stage as the workflow runs it: the load generator's records written in batches once a
second, with the run's live progress (over the API, the workflow's step detail and the
WebSocket), and a cancel of the run heard on the same beat."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.benchmarks.config import Slos
from budapp.benchmarks.loadgen import LoadGenerator, RequestRecord, Stage, StageOutcome
from budapp.benchmarks.metrics import distribution, stage_metrics
from budapp.benchmarks.models import BenchmarkRequest, BenchmarkRun, BenchmarkStatus
from budapp.benchmarks.repository import BenchmarkRepository
from budapp.core.db import session_scope
from budapp.core.logging import get_logger
from budapp.events.service import EventType, publish_org_event
from budapp.workflows import engine

PROGRESS_SECONDS = 1.0
log = get_logger("budapp.benchmarks")


def to_row(run_id: uuid.UUID, record: RequestRecord) -> dict[str, Any]:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "run_id": run_id,
        "stage": record.stage,
        "sequence": record.sequence,
        "started_s": round(record.started_s, 6),
        "status": record.status,
        "http_status": record.http_status,
        "error_kind": record.error_kind,
        "error": record.error,
        "ttft_ms": rounded(record.ttft_ms),
        "tpot_ms": rounded(record.tpot_ms),
        "e2el_ms": rounded(record.e2el_ms),
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "usage_reported": record.usage_reported,
        "chunk_ms": [round(value, 3) for value in record.chunk_ms],
        "chunk_tokens": list(record.chunk_tokens),
    }


def from_row(row: BenchmarkRequest) -> RequestRecord:
    return RequestRecord(
        stage=row.stage,
        sequence=row.sequence,
        started_s=row.started_s,
        status=row.status,  # type: ignore[arg-type]
        http_status=row.http_status,
        error_kind=row.error_kind,
        error=row.error,
        ttft_ms=row.ttft_ms,
        tpot_ms=row.tpot_ms,
        e2el_ms=row.e2el_ms,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        usage_reported=row.usage_reported,
        chunk_ms=list(row.chunk_ms),
        chunk_tokens=list(row.chunk_tokens),
    )


def stage_result(
    stage: dict[str, Any],
    records: list[RequestRecord],
    duration_s: float,
    slos: Slos,
    *,
    stop_reason: str,
    lag_ms: list[float] | None = None,
) -> dict[str, Any]:
    return {
        "stage": stage,
        "metrics": stage_metrics(records, duration_s, slos),
        "stop_reason": stop_reason,
        # Cut short: by a cancel, or by a restart of budapp during the stage.
        "partial": stop_reason in ("cancelled", "interrupted"),
        "generator_lag_ms": distribution(lag_ms or []),
    }


class StageRecorder:
    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        run: BenchmarkRun,
        workflow_id: str,
        generator: LoadGenerator,
        stages_total: int,
    ) -> None:
        self.factory = factory
        self.run_id = run.id
        self.organization_id = run.organization_id
        self.project_id = run.project_id
        self.workflow_id = workflow_id
        self.generator = generator
        self.stages_total = stages_total
        self.pending: list[dict[str, Any]] = []
        self.stop = asyncio.Event()

    def on_record(self, record: RequestRecord) -> None:
        self.pending.append(to_row(self.run_id, record))

    async def run(self, stage: Stage) -> StageOutcome:
        ended = asyncio.Event()
        beat = asyncio.create_task(self._beat(ended))
        try:
            outcome = await self.generator.run_stage(
                stage, on_record=self.on_record, stop=self.stop
            )
        finally:
            # Never cancelled mid-write: a write cut short on SQLite would leave its
            # connection holding the database's lock. The beat ends after its current one.
            ended.set()
            await beat
        await self.flush(None)
        return outcome

    async def _beat(self, ended: asyncio.Event) -> None:
        while not ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), PROGRESS_SECONDS)
                return
            try:
                await self.flush(self.generator.live())
            except Exception as exc:
                # The records stay pending for the next beat; the load goes on.
                log.warning("benchmark_progress_failed", run_id=str(self.run_id), error=str(exc))

    async def flush(self, live: dict[str, Any] | None) -> None:
        rows, self.pending = self.pending, []
        try:
            await self._write(rows, live)
        except BaseException:
            self.pending[:0] = rows
            raise

    async def _write(self, rows: list[dict[str, Any]], live: dict[str, Any] | None) -> None:
        async with session_scope(self.factory) as session:
            repository = BenchmarkRepository(session)
            await repository.add_requests(rows)
            status = await repository.status(self.run_id)
            if status is BenchmarkStatus.CANCELLED or status is None:
                self.stop.set()
            if live is None:
                return
            progress = {**live, "stages_total": self.stages_total}
            run = await repository.lock(self.run_id)
            if run is not None:
                run.progress = progress
            publish_org_event(
                session,
                self.organization_id,
                EventType.BENCHMARK_PROGRESS,
                {"benchmark_id": str(self.run_id), "project_id": str(self.project_id), **progress},
            )
        await engine.note(self.workflow_id, "measure", describe(progress))


def describe(progress: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    return (
        f"stage {progress['stage'] + 1} of at most {progress['stages_total']} "
        f"({progress['stage_label']}): {progress['requests_done']} requests, "
        f"{progress['current_rate']:.1f} req/s, TTFT p50 {ms(progress['ttft_p50_ms'])}, "
        f"TPOT p50 {ms(progress['tpot_p50_ms'])}"
    )
