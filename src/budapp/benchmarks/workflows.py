"""A benchmark run as a durable workflow: start (the run RUNNING), measure (every stage,
each stored as it ends) and store the results (leaderboard, the minted key revoked).

`measure` resumes after a crash: the stages already stored are not measured again, a stage
the crash cut short is closed from the records it had written (marked partial, "interrupted")
and the next stage starts; the plan of later stages depends only on the stored results."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.benchmarks.config import BenchmarkConfig, DatasetPrompts
from budapp.benchmarks.environment import (
    BENCHMARK_ENVIRONMENT,
    MAX_DATASET_PROMPTS,
    BenchmarkEnvironment,
)
from budapp.benchmarks.leaderboard import leaderboard_results, summarize
from budapp.benchmarks.loadgen import LoadGenerator, Target
from budapp.benchmarks.models import BenchmarkRun, BenchmarkStatus, TargetKind
from budapp.benchmarks.plans import capacity, next_stage
from budapp.benchmarks.prompts import PromptSource, usable_rows
from budapp.benchmarks.repository import BenchmarkRepository
from budapp.benchmarks.runner import StageRecorder, from_row, stage_result
from budapp.benchmarks.service import RUN, mark_cancelled, revoke_run_key, sealing_context
from budapp.benchmarks.targets import credential_values
from budapp.catalog.service import record_results
from budapp.core.db import session_scope, utcnow
from budapp.core.keyring import Sealed
from budapp.datasets.service import column_values
from budapp.endpoints.service import serving_replicas
from budapp.events.service import EventType, publish_org_event
from budapp.workflows import engine
from budapp.workflows.engine import StepError
from budapp.workflows.models import WorkflowRun

# Step names are DBOS's too (`budapp.step.<name>`), unique across every workflow.
STEPS = [
    ("start_benchmark", "Start the run"),
    ("measure", "Send the load, stage by stage"),
    ("store_results", "Store the results and revoke the run's key"),
]
# A stage's own bounds stop it; this only keeps a wedged step from holding its slot forever.
_MEASURE_TIMEOUT = 8 * 24 * 3600.0


def _environment() -> BenchmarkEnvironment:
    return engine.context()[BENCHMARK_ENVIRONMENT]


async def _run(session: AsyncSession, run_id: str) -> BenchmarkRun:
    run = await BenchmarkRepository(session).lock(uuid.UUID(run_id))
    if run is None or run.is_deleted:
        raise StepError("The benchmark no longer exists")
    return run


def _publish(session: AsyncSession, run: BenchmarkRun) -> None:
    publish_org_event(
        session,
        run.organization_id,
        EventType.BENCHMARK_STATUS,
        {
            "benchmark_id": str(run.id),
            "project_id": str(run.project_id),
            "status": run.status.value,
            "partial": run.partial,
            "message": run.status_message,
        },
    )


@engine.step("start_benchmark", max_attempts=3)
async def prepare(_workflow_id: str, run_id: str) -> bool:
    async with session_scope(engine.context().session_factory) as session:
        run = await _run(session, run_id)
        if run.status.finished:
            return False
        if run.status is BenchmarkStatus.PENDING:
            run.status = BenchmarkStatus.RUNNING
            run.started_at = utcnow()
            _publish(session, run)
        return True


async def _target(session: AsyncSession, run: BenchmarkRun) -> Target:
    """Opened at each start of `measure`: no secret is ever a step's (stored) result."""
    environment = _environment()
    if run.target_kind is TargetKind.ENDPOINT:
        assert run.endpoint_id is not None  # noqa: S101 - set for endpoint targets
        urls, _ = await serving_replicas(session, run.endpoint_id)
        if not urls:
            raise StepError("The endpoint has no ready replica any more")
        return Target(tuple(urls), run.model)
    if run.target_kind is TargetKind.ROUTER:
        if environment.gateway_url is None or run.api_key_sealed is None:
            raise StepError("The gateway is not reachable from here")
        sealed = Sealed(run.api_key_key_id or "", run.api_key_sealed)
        opened = environment.keyring.open(sealed, sealing_context(run.id)).decode()
        return Target((f"{environment.gateway_url}/v1",), run.model, opened)
    key: str | None = None
    if run.credential_id is not None:
        values = await credential_values(
            session, environment, run.organization_id, run.project_id, run.credential_id
        )
        if values is None:
            raise StepError("The benchmark's credential can no longer be used")
        key = str(values["api_key"]) if values.get("api_key") else None
    return Target((run.url or "",), run.model, key)


async def _prompts(session: AsyncSession, config: BenchmarkConfig) -> PromptSource:
    prompts = config.prompts
    if not isinstance(prompts, DatasetPrompts):
        return PromptSource(config)
    values = await column_values(
        session,
        _environment().storage,
        prompts.dataset_id,
        prompts.version or 1,
        prompts.column,
        MAX_DATASET_PROMPTS,
    )
    rows = usable_rows(values)
    if not rows:
        raise StepError(f"The dataset's column {prompts.column!r} holds no usable prompt")
    return PromptSource(config, rows)


@engine.step("measure", max_attempts=2, timeout_seconds=_MEASURE_TIMEOUT)
async def measure(workflow_id: str, run_id: str) -> int:
    factory = engine.context().session_factory
    environment = _environment()
    async with session_scope(factory) as session:
        run = await _run(session, run_id)
        if run.status.finished:
            return 0
        config = BenchmarkConfig.model_validate(run.config)
        stages: list[dict[str, Any]] = list((run.results or {}).get("stages", []))
        await _close_interrupted(session, run, config, stages)
        target = await _target(session, run)
        prompts = await _prompts(session, config)
    generator = LoadGenerator(target, config, prompts, max_rate=environment.max_rate)
    recorder = StageRecorder(factory, run, workflow_id, generator, config.stages_at_most)
    while (stage := next_stage(config, stages, max_rate=environment.max_rate)) is not None:
        outcome = await recorder.run(stage)
        stages.append(
            stage_result(
                stage.describe(),
                outcome.records,
                outcome.duration_s,
                config.slos,
                stop_reason=outcome.stop_reason,
                lag_ms=outcome.lag_ms,
            )
        )
        async with session_scope(factory) as session:
            run = await _run(session, run_id)
            _store(run, config, stages)
        if recorder.stop.is_set():
            break
    return len(stages)


async def _close_interrupted(
    session: AsyncSession, run: BenchmarkRun, config: BenchmarkConfig, stages: list[dict[str, Any]]
) -> None:
    """The stage a crash cut short: closed from the records it had written, kept partial."""
    index = len(stages)
    rows = await BenchmarkRepository(session).stage_requests(run.id, index)
    if not rows:
        return
    stage = next_stage(config, stages, max_rate=_environment().max_rate)
    records = [from_row(row) for row in rows]
    ended = [record.ended_s for record in records if record.status != "aborted"]
    stages.append(
        stage_result(
            stage.describe() if stage else {"index": index},
            records,
            max(ended, default=0.0),
            config.slos,
            stop_reason="interrupted",
        )
    )
    _store(run, config, stages)


def _store(run: BenchmarkRun, config: BenchmarkConfig, stages: list[dict[str, Any]]) -> None:
    run.partial = run.partial or any(stage["partial"] for stage in stages)
    run.results = {
        "stages": stages,
        "summary": summarize(config, stages),
        "capacity": capacity(config, stages),
    }


@engine.step("store_results", max_attempts=3)
async def finish(_workflow_id: str, run_id: str) -> None:
    async with session_scope(engine.context().session_factory) as session:
        run = await _run(session, run_id)
        if run.status.finished:
            return
        run.status = BenchmarkStatus.SUCCEEDED
        run.finished_at = utcnow()
        stages = (run.results or {}).get("stages", [])
        run.status_message = f"{len(stages)} stage(s) measured" + (
            " (partial)" if run.partial else ""
        )
        await record_results(session, leaderboard_results(run))
        await revoke_run_key(session, run)
        _publish(session, run)


async def _failed(arguments: dict[str, Any], message: str) -> None:
    async with session_scope(engine.context().session_factory) as session:
        run = await BenchmarkRepository(session).lock(uuid.UUID(arguments["run_id"]))
        if run is None or run.status.finished:
            return
        run.status = BenchmarkStatus.FAILED
        run.status_message = message[:2000]
        run.partial = run.partial or bool((run.results or {}).get("stages"))
        run.finished_at = utcnow()
        await revoke_run_key(session, run)
        _publish(session, run)


async def _cancelled(session: AsyncSession, workflow: WorkflowRun) -> None:
    run = await BenchmarkRepository(session).lock(workflow.resource_id)
    if run is not None:
        await mark_cancelled(session, run, workflow.error or "Cancelled")
        _publish(session, run)


@engine.definition(RUN, "benchmark", STEPS, on_cancel=_cancelled)
async def benchmark_workflow(workflow_id: str) -> None:
    async def body(arguments: dict[str, Any]) -> None:
        run_id = arguments["run_id"]
        if await prepare(workflow_id, run_id):
            await measure(workflow_id, run_id)
            await finish(workflow_id, run_id)

    await engine.execute(workflow_id, body, on_failure=_failed)
