"""The local provider's runtime supervisor: model runtimes as supervised child processes.

Each runtime gets a loopback port, is launched from its template, is health-checked until
ready, and is restarted with exponential backoff when it dies, until it has died more than
`max_restarts` times within `window_seconds` (then FAILED). Every state change is reported to
the listeners (the endpoints domain persists RUNNING / ERROR from them).

What runs is recorded in a state file under the runtime directory, so that a budapp started
after a crash can `reconcile()` with what should run: adopt the live runtimes it still wants,
kill those it does not, start the missing ones."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from budapp.adapters.clusters import logfiles, processes
from budapp.adapters.clusters.base import (
    RUNTIME_ID,
    ProviderError,
    RuntimeConflict,
    RuntimeSpec,
    RuntimeState,
    RuntimeStatus,
    UnknownRuntime,
)
from budapp.adapters.clusters.catalog import RuntimeTemplate, TemplateCatalog
from budapp.adapters.clusters.processes import ProcessRecord, StateFile
from budapp.adapters.clusters.runtime import (
    ReconcileReport,
    SupervisedRuntime,
    SupervisorConfig,
    wait_ready,
)
from budapp.core.logging import get_logger

log = get_logger("budapp.runtimes")

StatusListener = Callable[[RuntimeStatus], Awaitable[None]]
_SETTLED = frozenset({RuntimeState.RUNNING, RuntimeState.FAILED, RuntimeState.STOPPED})
_ACTIVE = frozenset({RuntimeState.STARTING, RuntimeState.RUNNING, RuntimeState.RESTARTING})
_FAILURE_LOG_LINES = 20
# Stands for the template of a runtime that is only ever ended, never launched: its own
# template may have been removed since it was started.
_ORPHAN = RuntimeTemplate(name="orphan", command=["orphan"])


class RuntimeSupervisor:
    def __init__(self, config: SupervisorConfig, catalog: TemplateCatalog) -> None:
        self.config = config
        self.catalog = catalog
        self._runtimes: dict[str, SupervisedRuntime] = {}
        self._listeners: list[StatusListener] = []
        self._logs = config.runtime_dir / "logs"
        self._state = StateFile(config.runtime_dir / "state.json")
        self._records: dict[str, ProcessRecord] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self._lock: IO[bytes] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Raises SupervisorBusy when another process supervises the same runtime directory:
        two supervisors would overwrite each other's state file and end each other's runtimes."""
        self._logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = processes.lock_directory(self.config.runtime_dir)
        self._records = self._state.load()
        self._housekeeping = asyncio.create_task(self._rotate_logs_forever())

    async def close(self, *, stop_runtimes: bool = True) -> None:
        """Stops every runtime, or with `stop_runtimes=False` leaves them running for the next
        budapp process to adopt (their records stay in the state file)."""
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        if stop_runtimes:
            await asyncio.gather(*(self.stop(rid) for rid in list(self._runtimes)))
        else:
            for runtime in self._runtimes.values():
                if runtime.task is not None:
                    runtime.task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await runtime.task
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def subscribe(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    # --- operations --------------------------------------------------------------------------

    async def start(self, spec: RuntimeSpec, *, wait: bool = True) -> RuntimeStatus:
        """Starts a runtime; with `wait`, returns once it is RUNNING or FAILED. Starting a
        runtime id that is already active with the same spec is a no-op."""
        existing = self._runtimes.get(spec.runtime_id)
        if existing is not None and existing.state in _ACTIVE:
            if existing.spec != spec:
                raise RuntimeConflict(f"runtime {spec.runtime_id} runs with another spec")
            return await self._settle(existing) if wait else self._status(existing)
        template = self.catalog.get(spec.template)
        # Fails here, before any process, when the spec lacks what the template needs.
        template.render(spec, host=self.config.host, port=0)
        runtime = SupervisedRuntime(spec, template, port=self._allocate_port())
        self._runtimes[spec.runtime_id] = runtime
        runtime.task = asyncio.create_task(self._supervise(runtime, adopt=False))
        return await self._settle(runtime) if wait else self._status(runtime)

    async def wait_settled(self, runtime_id: str) -> RuntimeStatus:
        return await self._settle(self._get(runtime_id))

    async def stop(self, runtime_id: str) -> None:
        """SIGTERM to the runtime's process group, SIGKILL after the grace period. Stopping
        an unknown or stopped runtime is a no-op."""
        runtime = self._runtimes.get(runtime_id)
        if runtime is None:
            return
        runtime.stopping = True
        runtime.wake.set()
        await self._terminate(runtime)
        if runtime.task is not None:
            await asyncio.gather(runtime.task, return_exceptions=True)
        self._forget(runtime)
        if runtime.state is not RuntimeState.STOPPED:
            await self._change(runtime, RuntimeState.STOPPED, "stopped")

    async def discard(self, runtime_id: str) -> None:
        """Stops the runtime and forgets it, logs included (its endpoint was deleted)."""
        await self.stop(runtime_id)
        self._runtimes.pop(runtime_id, None)
        if RUNTIME_ID.fullmatch(runtime_id):
            log_path = self.log_path(runtime_id)
            for path in [log_path, *log_path.parent.glob(f"{log_path.name}.*")]:
                path.unlink(missing_ok=True)

    def status(self, runtime_id: str) -> RuntimeStatus:
        return self._status(self._get(runtime_id))

    def statuses(self) -> list[RuntimeStatus]:
        return [self._status(runtime) for runtime in self._runtimes.values()]

    def log_path(self, runtime_id: str) -> Path:
        return self._logs / f"{runtime_id}.log"

    async def logs(self, runtime_id: str, lines: int = 100) -> list[str]:
        """The last lines the runtime wrote (stdout and stderr), also after it stopped."""
        # The id becomes a file name: only the ids a RuntimeSpec accepts.
        if not RUNTIME_ID.fullmatch(runtime_id) or not self.log_path(runtime_id).exists():
            raise UnknownRuntime(f"no runtime {runtime_id}")
        return await asyncio.to_thread(logfiles.tail, self.log_path(runtime_id), lines)

    async def reconcile(self, desired: list[RuntimeSpec]) -> ReconcileReport:
        """Makes what runs match `desired`: adopts live runtimes a previous budapp process
        left (same spec), kills the others it left, stops supervised ones no longer desired,
        and starts the missing ones (without waiting for them to be ready)."""
        wanted = {spec.runtime_id: spec for spec in desired}
        report = ReconcileReport([], [], [], [])
        for runtime_id, runtime in list(self._runtimes.items()):
            if runtime_id not in wanted and runtime.state in _ACTIVE:
                await self.stop(runtime_id)
                report.stopped.append(runtime_id)
        for runtime_id, record in list(self._records.items()):
            if runtime_id in self._runtimes:
                continue
            if await self._adopt_or_kill(record, wanted.get(runtime_id), report):
                continue
            self._records.pop(runtime_id, None)
        self._state.save(self._records)
        for runtime_id, spec in wanted.items():
            current = self._runtimes.get(runtime_id)
            if current is None or current.state is RuntimeState.STOPPED:
                try:
                    await self.start(spec, wait=False)
                except ProviderError as exc:
                    # One bad spec (a template since removed) must not stop the others.
                    log.error("runtime_not_started", runtime_id=runtime_id, reason=str(exc))
                    report.failed.append(runtime_id)
                    continue
                report.started.append(runtime_id)
        log.info("runtimes_reconciled", **{k: v for k, v in vars(report).items() if v})
        return report

    # --- supervision -------------------------------------------------------------------------

    async def _supervise(self, runtime: SupervisedRuntime, *, adopt: bool) -> None:
        try:
            await self._run(runtime, adopt=adopt)
        except Exception as exc:
            # A bug here must not leave the runtime unsupervised and its waiters hanging.
            log.exception("runtime_supervision_failed", runtime_id=runtime.spec.runtime_id)
            await self._terminate(runtime)
            await self._fail(runtime, f"supervision failed: {exc!r}")

    async def _run(self, runtime: SupervisedRuntime, *, adopt: bool) -> None:
        launch = not adopt
        while not runtime.stopping:
            if launch:
                try:
                    await self._launch(runtime)
                except (OSError, ProviderError) as exc:
                    await self._fail(runtime, f"could not start: {exc}")
                    return
            launch = True
            if runtime.stopping:
                break
            outcome = await self._wait_ready(runtime)
            if outcome == "timeout":
                await self._terminate(runtime)
                timeout = runtime.template.readiness_timeout_seconds
                await self._fail(runtime, f"not ready within {timeout:g} s")
                return
            if outcome == "ready":
                await self._change(runtime, RuntimeState.RUNNING, None)
                await self._wait_exit(runtime)
            if runtime.stopping:
                break
            if not await self._after_crash(runtime):
                return

    async def _after_crash(self, runtime: SupervisedRuntime) -> bool:
        """Records a crash; False when the runtime has crashed too often and is now FAILED."""
        policy = self.config.restart
        code = runtime.process.returncode if runtime.process is not None else None
        now = time.monotonic()
        runtime.crashes.append(now)
        while runtime.crashes and now - runtime.crashes[0] > policy.window_seconds:
            runtime.crashes.popleft()
        exited = f"exited with code {code}" if code is not None else "exited"
        if len(runtime.crashes) > policy.max_restarts:
            window = policy.window_seconds
            await self._fail(
                runtime, f"{exited}; {len(runtime.crashes)} crashes within {window:g} s"
            )
            return False
        delay = policy.backoff(len(runtime.crashes))
        runtime.restarts += 1
        await self._change(runtime, RuntimeState.RESTARTING, f"{exited}; restart in {delay:g} s")
        log.warning("runtime_crashed", runtime_id=runtime.spec.runtime_id, code=code, delay=delay)
        runtime.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.wake.wait(), delay)
        if not processes.port_is_free(self.config.host, runtime.port):
            runtime.port = self._allocate_port()
        return True

    async def _launch(self, runtime: SupervisedRuntime) -> None:
        spec = runtime.spec
        argv = runtime.template.render(spec, host=self.config.host, port=runtime.port)
        runtime.mark = uuid.uuid4().hex
        env = {**os.environ, **runtime.template.env, **spec.env}
        env[processes.MARK_VARIABLE] = runtime.mark
        log_path = self.log_path(spec.runtime_id)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        await asyncio.to_thread(_append, log_path, f"--- budapp {stamp}: {' '.join(argv)}\n")
        process = await asyncio.to_thread(processes.spawn, argv, env, log_path)
        runtime.process, runtime.pid = process, process.pid
        runtime.create_time = processes.create_time(process.pid) or 0.0
        self._records[spec.runtime_id] = ProcessRecord(
            spec=spec,
            pid=process.pid,
            create_time=runtime.create_time,
            mark=runtime.mark,
            port=runtime.port,
        )
        self._state.save(self._records)
        await self._change(runtime, RuntimeState.STARTING, None)
        if runtime.stopping:
            await self._terminate(runtime)

    async def _wait_ready(self, runtime: SupervisedRuntime) -> str:
        return await wait_ready(
            f"{self._url(runtime)}{runtime.template.health_path}",
            within=runtime.template.readiness_timeout_seconds,
            alive=lambda: self._alive(runtime),
            max_interval=self.config.health_interval_seconds,
        )

    async def _wait_exit(self, runtime: SupervisedRuntime) -> None:
        # Polled: an adopted runtime is not our child, so there is no wait() to await.
        while self._alive(runtime):  # noqa: ASYNC110
            await asyncio.sleep(self.config.poll_interval_seconds)

    def _alive(self, runtime: SupervisedRuntime) -> bool:
        if runtime.process is not None:
            return runtime.process.poll() is None
        if runtime.pid is None or runtime.create_time is None:
            return False
        return processes.is_alive(runtime.pid, runtime.create_time)

    async def _terminate(self, runtime: SupervisedRuntime) -> None:
        pid = runtime.pid
        if pid is None:
            return
        if self._alive(runtime):
            processes.signal_group(pid, signal.SIGTERM)
            if not await self._exited_within(runtime, self.config.stop_grace_seconds):
                log.warning("runtime_killed", runtime_id=runtime.spec.runtime_id, pid=pid)
                processes.signal_group(pid, signal.SIGKILL)
                await self._exited_within(runtime, self.config.stop_grace_seconds)
        # Workers the runtime forked may outlive it; they carry its mark.
        stragglers = await asyncio.to_thread(processes.group_members, pid, runtime.mark)
        processes.kill_pids(stragglers)

    async def _exited_within(self, runtime: SupervisedRuntime, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._alive(runtime):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _adopt_or_kill(
        self, record: ProcessRecord, wanted: RuntimeSpec | None, report: ReconcileReport
    ) -> bool:
        """True when the recorded runtime was adopted (its record stays)."""
        runtime_id = record.spec.runtime_id
        alive = await asyncio.to_thread(processes.is_ours, record)
        if alive and wanted == record.spec and wanted.template in self.catalog.names:
            runtime = SupervisedRuntime(wanted, self.catalog.get(wanted.template), port=record.port)
            runtime.pid, runtime.create_time, runtime.mark = (
                record.pid,
                record.create_time,
                record.mark,
            )
            self._runtimes[runtime_id] = runtime
            runtime.task = asyncio.create_task(self._supervise(runtime, adopt=True))
            report.adopted.append(runtime_id)
            log.info("runtime_adopted", runtime_id=runtime_id, pid=record.pid)
            return True
        # A pid whose create time or mark differs is someone else's now: only processes
        # still carrying this runtime's mark in its group are killed.
        orphan = SupervisedRuntime(record.spec, _ORPHAN, port=record.port)
        orphan.mark = record.mark
        if alive:
            orphan.pid, orphan.create_time = record.pid, record.create_time
            await self._terminate(orphan)
            report.killed.append(runtime_id)
        else:
            stragglers = await asyncio.to_thread(processes.group_members, record.pid, record.mark)
            processes.kill_pids(stragglers)
            if stragglers:
                report.killed.append(runtime_id)
        return False

    # --- state -------------------------------------------------------------------------------

    async def _fail(self, runtime: SupervisedRuntime, reason: str) -> None:
        last = await asyncio.to_thread(
            logfiles.tail, self.log_path(runtime.spec.runtime_id), _FAILURE_LOG_LINES
        )
        message = reason + ("\nlast output:\n" + "\n".join(last) if last else "")
        self._forget(runtime)
        log.error("runtime_failed", runtime_id=runtime.spec.runtime_id, reason=reason)
        await self._change(runtime, RuntimeState.FAILED, message)

    def _forget(self, runtime: SupervisedRuntime) -> None:
        if self._records.pop(runtime.spec.runtime_id, None) is not None:
            self._state.save(self._records)

    async def _change(
        self, runtime: SupervisedRuntime, state: RuntimeState, message: str | None
    ) -> None:
        runtime.state, runtime.message = state, message
        if state in _SETTLED:
            runtime.settled.set()
        status = self._status(runtime)
        for listener in self._listeners:
            try:
                await listener(status)
            except Exception:  # one failing listener must not stop the supervision
                log.exception("runtime_listener_failed", runtime_id=status.runtime_id)

    async def _settle(self, runtime: SupervisedRuntime) -> RuntimeStatus:
        runtime.settled.clear()
        if runtime.state in _SETTLED:
            return self._status(runtime)
        await runtime.settled.wait()
        return self._status(runtime)

    def _status(self, runtime: SupervisedRuntime) -> RuntimeStatus:
        return RuntimeStatus(
            runtime_id=runtime.spec.runtime_id,
            state=runtime.state,
            url=self._url(runtime) if runtime.state in _ACTIVE else None,
            pid=runtime.pid if runtime.state in _ACTIVE else None,
            restarts=runtime.restarts,
            message=runtime.message,
        )

    def _url(self, runtime: SupervisedRuntime) -> str:
        return f"http://{self.config.host}:{runtime.port}"

    def _get(self, runtime_id: str) -> SupervisedRuntime:
        try:
            return self._runtimes[runtime_id]
        except KeyError:
            raise UnknownRuntime(f"no runtime {runtime_id}") from None

    def _allocate_port(self) -> int:
        low, high = self.config.port_range
        taken = {r.port for r in self._runtimes.values() if r.state in _ACTIVE}
        taken |= {record.port for record in self._records.values()}
        candidates = list(range(low, high + 1))
        start = random.randrange(len(candidates))  # noqa: S311 - spreads, not secret
        for port in candidates[start:] + candidates[:start]:
            if port not in taken and processes.port_is_free(self.config.host, port):
                return port
        raise ProviderError(f"no free port in {low}-{high} on {self.config.host}")

    async def _rotate_logs_forever(self) -> None:
        while True:
            await asyncio.sleep(max(self.config.poll_interval_seconds, 1.0))
            for runtime_id in list(self._runtimes):
                await asyncio.to_thread(
                    logfiles.rotate_if_large,
                    self.log_path(runtime_id),
                    max_bytes=self.config.log_max_bytes,
                    backups=self.config.log_backups,
                )


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
