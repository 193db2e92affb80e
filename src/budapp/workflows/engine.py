"""The durable execution engine (DBOS Transact) and the small vocabulary domains use to write
workflows on it: `definition()` declares a workflow and its named steps, `step()` turns a
coroutine into a retried, time-limited, memoised step whose progress is written to
`workflow_steps` and announced to the organisation.

DBOS keeps its state in budapp's own database: schema `dbos` on PostgreSQL, and on the embedded
default a `workflows.db` SQLite file beside budapp's (two SQLite writers on one file would
queue behind each other's locks). A workflow interrupted by a crash resumes when the process
(same executor id) starts again: completed steps return their recorded results, the
interrupted one runs again, so steps are written to be idempotent.

DBOS is a process-wide singleton; the engine counts the apps using it (tests run several
apps in one process) and launches it once.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from dbos import DBOS, DBOSConfig, Queue, SetWorkflowID
from dbos._error import (
    DBOSException,
    DBOSMaxStepRetriesExceeded,
    DBOSWorkflowCancelledError,
)
from prometheus_client import Counter
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp import __version__
from budapp.core.background import BackgroundTask
from budapp.core.components import Components
from budapp.core.db import session_scope, utcnow
from budapp.core.logging import get_logger
from budapp.events.service import EventType, publish_org_event
from budapp.workflows.models import RunStatus, StepStatus, WorkflowRun
from budapp.workflows.repository import WorkflowRepository

# On the default registry, served by budapp's /metrics (Grafana's workflow panel).
RUNS_FINISHED = Counter(
    "budapp_workflow_runs_finished_total", "Workflow runs that ended", ("kind", "status")
)
log = get_logger("budapp.workflows")

P = ParamSpec("P")
R = TypeVar("R")

QUEUE_NAME = "budapp-workflows"
# Registered at launch. Each replica runs at most `worker_concurrency` workflows at once; an
# enqueued workflow is dequeued by one replica only.
_queue: Queue | None = None


@dataclass(frozen=True, slots=True)
class StepSpec:
    name: str
    title: str


RunHook = Callable[[AsyncSession, WorkflowRun], Awaitable[None]]


@dataclass
class Definition:
    kind: str
    resource_type: str
    steps: list[StepSpec]
    function: Callable[[str], Awaitable[None]] | None = None
    # Runs in the request's unit of work when a user cancels a run (e.g. mark the resource).
    on_cancel: RunHook | None = None
    # Runs before a retry is started; may refuse it with a typed error.
    before_retry: RunHook | None = None

    def position(self, name: str) -> int:
        for index, spec in enumerate(self.steps):
            if spec.name == name:
                return index
        raise KeyError(name)


DEFINITIONS: dict[str, Definition] = {}


def definition(
    kind: str,
    resource_type: str,
    steps: list[tuple[str, str]],
    *,
    on_cancel: RunHook | None = None,
    before_retry: RunHook | None = None,
) -> Callable[[Callable[[str], Awaitable[None]]], Callable[[str], Awaitable[None]]]:
    """Declares a workflow of `kind` over a resource, with its steps in order; the decorated
    coroutine takes the run id and is registered with DBOS under `budapp.<kind>`."""
    declared = Definition(
        kind,
        resource_type,
        [StepSpec(name, title) for name, title in steps],
        on_cancel=on_cancel,
        before_retry=before_retry,
    )

    def decorate(function: Callable[[str], Awaitable[None]]) -> Callable[[str], Awaitable[None]]:
        durable = DBOS.workflow(name=f"budapp.{kind}", max_recovery_attempts=20)(function)
        declared.function = durable
        DEFINITIONS[kind] = declared
        return durable

    return decorate


# The components of the apps using the engine, newest last (one in production; tests run
# several apps at once). Workflow steps reach the database, the cluster connector, storage...
# through `context()`, typed as the request path reaches them.
_contexts: list[Components] = []


def context() -> Components:
    if not _contexts:
        raise RuntimeError("the workflow engine is not running")
    return _contexts[-1]


class StepError(Exception):
    """A step failure that retrying cannot fix (bad input, a refused placement): the step
    fails at once instead of using up its attempts."""


def step(
    name: str,
    *,
    max_attempts: int = 3,
    interval_seconds: float = 1.0,
    backoff_rate: float = 2.0,
    timeout_seconds: float = 300.0,
) -> Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]:
    """A durable step of a workflow. The function's first argument is the run id. Its result
    is memoised by DBOS; each attempt is recorded on the run's step row."""

    def decorate(function: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        @functools.wraps(function)
        async def attempt(run_id: str, *args: Any, **kwargs: Any) -> R:
            await _record_step(run_id, name, StepStatus.RUNNING, attempt=True)
            try:
                result = await asyncio.wait_for(
                    function(run_id, *args, **kwargs), timeout=timeout_seconds
                )
            except TimeoutError:
                message = f"timed out after {timeout_seconds:g}s"
                await _record_step(run_id, name, StepStatus.RUNNING, error=message)
                raise
            except Exception as exc:
                status = StepStatus.FAILED if isinstance(exc, StepError) else StepStatus.RUNNING
                await _record_step(run_id, name, status, error=_describe(exc))
                raise
            await _record_step(run_id, name, StepStatus.SUCCEEDED)
            return result

        return DBOS.step(
            name=f"budapp.step.{name}",
            retries_allowed=max_attempts > 1,
            max_attempts=max_attempts,
            interval_seconds=interval_seconds,
            backoff_rate=backoff_rate,
            should_retry=lambda exc: not isinstance(exc, StepError),
        )(attempt)

    return decorate


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:2000]


async def _record_step(
    run_id: str,
    name: str,
    status: StepStatus,
    *,
    attempt: bool = False,
    error: str | None = None,
    detail: str | None = None,
) -> None:
    engine = context()
    run_uuid = uuid.UUID(run_id)
    now = utcnow()
    async with session_scope(engine.session_factory) as session:
        runs = WorkflowRepository(session)
        run = await runs.by_id(run_uuid)
        if run is None:
            return
        row = await runs.step(run_uuid, name)
        if row is None:
            return
        row.status = status
        if attempt:
            row.attempts += 1
            row.started_at = row.started_at or now
            row.error = None
        if error is not None:
            row.error = error
        if detail is not None:
            row.detail = detail[:1000]
        if status in {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED}:
            row.finished_at = now
        if status is StepStatus.SUCCEEDED:
            await session.flush()
            run.steps_done = await runs.count_done(run_uuid)
        payload = {
            "workflow_id": run_id,
            "kind": run.kind,
            "step": name,
            "position": row.position,
            "status": status.value,
            "attempts": row.attempts,
            "error": row.error,
            "detail": row.detail,
            "steps_done": run.steps_done,
            "steps_total": run.steps_total,
        }
        publish_org_event(session, run.organization_id, EventType.WORKFLOW_STEP, payload)


async def note(run_id: str, name: str, detail: str) -> None:
    """Updates what a running step says it is doing (shown over the API and the WebSocket)."""
    await _record_step(run_id, name, StepStatus.RUNNING, detail=detail)


async def set_run_status(run_id: str, status: RunStatus, *, error: str | None = None) -> None:
    engine = context()
    run_uuid = uuid.UUID(run_id)
    now = utcnow()
    async with session_scope(engine.session_factory) as session:
        runs = WorkflowRepository(session)
        run = await runs.by_id(run_uuid)
        if run is None or (run.status.finished and status is not RunStatus.RUNNING):
            return
        if run.status is RunStatus.CANCELLED:
            return
        run.status = status
        if status is RunStatus.RUNNING:
            run.started_at = run.started_at or now
        if status.finished:
            run.finished_at = now
            run.error = error
            RUNS_FINISHED.labels(run.kind, status.value).inc()
            if status is not RunStatus.SUCCEEDED:
                await runs.fail_running_steps(run_uuid, now)
        payload = {
            "workflow_id": run_id,
            "kind": run.kind,
            "resource_type": run.resource_type,
            "resource_id": str(run.resource_id),
            "status": status.value,
            "error": error,
        }
        publish_org_event(session, run.organization_id, EventType.WORKFLOW_STATUS, payload)


async def run_arguments(run_id: str) -> dict[str, Any]:
    async with session_scope(context().session_factory) as session:
        run = await WorkflowRepository(session).by_id(uuid.UUID(run_id))
        return dict(run.arguments) if run is not None else {}


def failure_message(exc: BaseException) -> str:
    """The message worth showing for a failed run: DBOS wraps a step's last error when its
    attempts run out; show that error, not the wrapper."""
    if isinstance(exc, DBOSMaxStepRetriesExceeded) and exc.errors:
        return _describe(exc.errors[-1])
    for candidate in (exc.__cause__, exc.__context__):
        if candidate is not None and not isinstance(candidate, DBOSException):
            return _describe(candidate)
    return _describe(exc)


async def execute(
    run_id: str,
    body: Callable[[dict[str, Any]], Awaitable[None]],
    *,
    on_failure: Callable[[dict[str, Any], str], Awaitable[None]] | None = None,
) -> None:
    """The frame of every workflow: marks the run RUNNING, runs its steps, then SUCCEEDED or
    FAILED (after `on_failure`, e.g. to put the resource in ERROR and tell its owner). A
    cancelled run stops here without touching its recorded status."""
    arguments = await run_arguments(run_id)
    await set_run_status(run_id, RunStatus.RUNNING)
    try:
        await body(arguments)
    except DBOSWorkflowCancelledError:
        log.info("workflow_cancelled", run_id=run_id)
        raise
    except Exception as exc:
        message = failure_message(exc)
        log.warning("workflow_failed", run_id=run_id, error=message)
        if on_failure is not None:
            await on_failure(arguments, message)
        await set_run_status(run_id, RunStatus.FAILED, error=message)
        return
    await set_run_status(run_id, RunStatus.SUCCEEDED)


# --- the engine's lifecycle -------------------------------------------------------------------


def system_database_url(database_url: str, override: str) -> str:
    """Where DBOS keeps its state: the override, else budapp's PostgreSQL database (schema
    `dbos`, through psycopg), else a `workflows.db` beside the SQLite file."""
    if override:
        return override
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    database = Path(url.database or "budapp.db")
    return f"sqlite:///{database.with_name('workflows.db')}"


class WorkflowEngine:
    _users = 0
    _url: str | None = None
    _lock = asyncio.Lock()

    def __init__(
        self,
        system_url: str,
        *,
        executor_id: str,
        concurrency: int,
        heartbeat_seconds: float = 0.0,
        takeover_seconds: float = 60.0,
    ) -> None:
        self.system_url = system_url
        self.executor_id = executor_id
        self.concurrency = concurrency
        self.heartbeat_seconds = heartbeat_seconds
        self.takeover_seconds = takeover_seconds
        self._context: Components | None = None
        self._heartbeat = BackgroundTask("workflow-heartbeat")

    async def start(self, engine_context: Components) -> None:
        async with WorkflowEngine._lock:
            self._context = engine_context
            _contexts.append(engine_context)
            if WorkflowEngine._users == 0:
                # DBOS's own schema migrations first, in a thread: on PostgreSQL they build
                # indexes CONCURRENTLY, which waits for every open transaction, ours too.
                # Run on this loop's thread (inside launch), they would block the very tasks
                # (webhook dispatcher, scan worker) whose transactions they wait for: a first
                # start against a fresh database hung that way.
                await asyncio.to_thread(DBOS.migrate, self.system_url)
                config: DBOSConfig = {
                    "name": "budapp",
                    "system_database_url": self.system_url,
                    "executor_id": self.executor_id,
                    # Recovery replays only workflows of the same version: a release's code.
                    "application_version": __version__,
                    "log_level": "WARNING",
                    "run_migrations": False,
                }
                global _queue  # noqa: PLW0603 - DBOS queues are process-wide too
                DBOS(config=config)
                # Launched from the app's event loop thread, so that DBOS runs dequeued and
                # recovered workflows on this loop, where budapp's connections live (it
                # would otherwise use a loop of its own).
                DBOS.launch()
                _queue = await DBOS.register_queue_async(
                    QUEUE_NAME,
                    worker_concurrency=self.concurrency,
                    polling_interval_sec=0.2,
                    on_conflict="always_update",
                )
                WorkflowEngine._url = self.system_url
            elif WorkflowEngine._url != self.system_url:
                # DBOS is one per process: a second app (tests only) shares the first's.
                log.warning("workflow_engine_shared", running=WorkflowEngine._url)
            WorkflowEngine._users += 1
        await self._requeue_pending(engine_context.session_factory)
        if self.heartbeat_seconds > 0:
            await self.beat(engine_context.session_factory)
            self._heartbeat.start(lambda: self._beat_forever(engine_context.session_factory))

    async def stop(self) -> None:
        await self._heartbeat.stop()
        async with WorkflowEngine._lock:
            if self._context in _contexts:
                _contexts.remove(self._context)
            WorkflowEngine._users -= 1
            if WorkflowEngine._users == 0:
                await asyncio.to_thread(DBOS.destroy, workflow_completion_timeout_sec=5)
                # DBOS made its own thread pool this loop's default executor, and has just shut
                # it down; the loop lives on (tests, embedded use), so it gets a fresh pool.
                asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())
                WorkflowEngine._url = None
                global _queue  # noqa: PLW0603
                _queue = None

    async def beat(self, factory: async_sessionmaker[AsyncSession]) -> list[str]:
        """Records that this replica lives, and takes over the workflows of replicas whose
        heartbeat is older than `takeover_seconds`: their rows are deleted (one replica
        wins each, by the delete's row count) and their PENDING workflows re-enqueued on the
        engine's internal queue, where exactly one replica dequeues each. A replica that comes
        back under the same name records itself again. Returns the executors taken over."""
        now = utcnow()
        cutoff = now - timedelta(seconds=self.takeover_seconds)
        async with session_scope(factory) as session:
            await WorkflowRepository(session).record_heartbeat(self.executor_id, now)
        async with factory() as session:
            stale = await WorkflowRepository(session).silent_executors(self.executor_id, cutoff)
        taken = []
        for executor in stale:
            async with session_scope(factory) as session:
                claimed = await WorkflowRepository(session).claim_executor(executor, cutoff)
            if not claimed:
                continue  # another replica took it
            handles = await asyncio.to_thread(DBOS._recover_pending_workflows, [executor])
            log.warning("workflow_executor_taken_over", executor=executor, workflows=len(handles))
            taken.append(executor)
        return taken

    async def _beat_forever(self, factory: async_sessionmaker[AsyncSession]) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.beat(factory)
            except Exception as exc:
                # The database was unreachable, say: the next beat tries again.
                log.warning("workflow_heartbeat_failed", error=str(exc))

    async def _requeue_pending(self, factory: async_sessionmaker[AsyncSession]) -> None:
        """Runs recorded as PENDING whose hand-over to the engine a crash may have prevented
        (the request committed, then the process died before enqueueing). Enqueueing under
        the run's id is idempotent: a run the engine already has is left as it is."""
        async with factory() as session:
            pending = await WorkflowRepository(session).pending()
        for run_id, kind in pending:
            await enqueue(kind, run_id, queued=True)


async def enqueue(kind: str, run_id: uuid.UUID, *, queued: bool = False) -> None:
    """Hands a run to the engine under the run's id (idempotent: a run the engine already
    has is left alone). By default it starts here at once, on the replica that took the
    request; `queued` puts it on the shared queue for whichever replica has room (used for
    the runs re-offered at start-up)."""
    declared = DEFINITIONS.get(kind)
    if declared is None or declared.function is None:
        log.error("workflow_kind_unknown", kind=kind, run_id=str(run_id))
        return
    if _queue is None:
        raise RuntimeError("the workflow engine is not running")
    function = cast("Callable[[str], Coroutine[Any, Any, None]]", declared.function)
    with SetWorkflowID(str(run_id)):
        if queued:
            await _queue.enqueue_async(function, str(run_id))
        else:
            await DBOS.start_workflow_async(function, str(run_id))
