"""The runtime supervisor against real child processes (tests/fixtures/runtime_server.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from budapp.adapters.clusters import logfiles, processes
from budapp.adapters.clusters.base import (
    RuntimeConflict,
    RuntimeSpec,
    RuntimeState,
    UnknownRuntime,
)
from budapp.adapters.clusters.catalog import TemplateError
from budapp.adapters.clusters.processes import (
    MARK_VARIABLE,
    ProcessRecord,
    StateFile,
    SupervisorBusy,
)
from budapp.adapters.clusters.supervisor import RuntimeSupervisor
from tests.adapters.clusters.conftest import (
    FIXTURES,
    Recorder,
    catalog_for,
    make_config,
    write_test_templates,
)


def spec(runtime_id: str = "ep1-0", *extra: str, **values: object) -> RuntimeSpec:
    return RuntimeSpec(
        runtime_id=runtime_id,
        template="fake",
        model_name="tiny",
        extra_args=list(extra),
        **values,  # type: ignore[arg-type]
    )


async def eventually(check: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_start_waits_until_healthy_and_serves(
    supervisor: RuntimeSupervisor, recorder: Recorder
) -> None:
    status = await supervisor.start(spec("ready", "--ready-after", "0.5"))
    assert status.state is RuntimeState.RUNNING
    assert status.url is not None
    assert status.pid is not None
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{status.url}/health")).status_code == 200
    assert recorder.states("ready") == ["STARTING", "RUNNING"]
    # Starting the same spec again is a no-op; another spec under the same id is refused.
    assert (await supervisor.start(spec("ready", "--ready-after", "0.5"))).pid == status.pid
    with pytest.raises(RuntimeConflict):
        await supervisor.start(spec("ready"))


async def test_environment_of_template_and_spec_reaches_the_runtime(
    supervisor: RuntimeSupervisor,
) -> None:
    status = await supervisor.start(spec("env", env={"EXTRA": "yes"}))
    assert status.pid is not None
    environment = psutil.Process(status.pid).environ()
    assert environment["RUNTIME_KIND"] == "fake"
    assert environment["EXTRA"] == "yes"


async def test_output_and_errors_are_captured_in_the_log(supervisor: RuntimeSupervisor) -> None:
    await supervisor.start(spec("logs"))
    lines = await supervisor.logs("logs", 50)
    assert any(line.startswith("--- budapp") for line in lines)
    assert "runtime ready" in lines
    assert "this line goes to stderr" in lines
    assert await supervisor.logs("logs", 1) == [lines[-1]]
    with pytest.raises(UnknownRuntime):
        await supervisor.logs("../../etc/passwd")


async def test_stop_ends_the_whole_process_group(
    supervisor: RuntimeSupervisor, recorder: Recorder
) -> None:
    status = await supervisor.start(spec("stop", "--fork-worker"))
    assert status.pid is not None
    await eventually(lambda: len(psutil.Process(status.pid).children()) == 1)
    worker = psutil.Process(status.pid).children()[0].pid
    await supervisor.stop("stop")
    assert gone(status.pid)
    # The worker ignores SIGTERM and outlives its leader: killed too.
    await eventually(lambda: gone(worker))
    assert supervisor.status("stop").state is RuntimeState.STOPPED
    assert recorder.states("stop")[-1] == "STOPPED"
    assert StateFile(supervisor.config.runtime_dir / "state.json").load() == {}
    await supervisor.stop("stop")  # idempotent
    assert await supervisor.logs("stop")  # kept after a stop
    await supervisor.discard("stop")
    assert not supervisor.log_path("stop").exists()
    with pytest.raises(UnknownRuntime):
        supervisor.status("stop")


async def test_a_runtime_ignoring_sigterm_is_killed_after_the_grace_period(
    runtime_dir: Path, templates: Path
) -> None:
    supervisor = RuntimeSupervisor(
        make_config(runtime_dir, stop_grace_seconds=0.5), catalog_for(templates)
    )
    await supervisor.open()
    status = await supervisor.start(spec("stubborn", "--ignore-term"))
    assert status.pid is not None
    started = time.monotonic()
    await supervisor.close()
    assert gone(status.pid)
    assert 0.4 < time.monotonic() - started < 5


async def test_a_crashed_runtime_restarts_with_growing_backoff(
    supervisor: RuntimeSupervisor, recorder: Recorder
) -> None:
    status = await supervisor.start(spec("crash", "--crash-after", "0.3"))
    assert status.state is RuntimeState.RUNNING
    first_pid = status.pid
    await eventually(lambda: recorder.states("crash").count("RUNNING") >= 2)
    current = supervisor.status("crash")
    assert current.pid != first_pid
    assert current.restarts >= 1
    restarting = [s.message for s in recorder.seen if s.state is RuntimeState.RESTARTING]
    assert restarting[0] == "exited with code 7; restart in 0.2 s"
    await eventually(lambda: len(restarting) >= 2 or "FAILED" in recorder.states("crash"))
    restarting = [s.message for s in recorder.seen if s.state is RuntimeState.RESTARTING]
    assert restarting[1] == "exited with code 7; restart in 0.4 s"


async def test_too_many_crashes_in_the_window_fail_the_runtime(
    supervisor: RuntimeSupervisor, recorder: Recorder
) -> None:
    status = await supervisor.start(spec("doomed", "--exit-at-once"))
    assert status.state is RuntimeState.FAILED
    assert status.url is None
    assert status.message is not None
    assert "3 crashes within 60 s" in status.message
    assert "fatal: cannot load model" in status.message
    assert recorder.states("doomed").count("RESTARTING") == 2
    assert StateFile(supervisor.config.runtime_dir / "state.json").load() == {}


async def test_a_runtime_never_ready_fails_after_the_timeout(
    tmp_path: Path, runtime_dir: Path
) -> None:
    templates = write_test_templates(tmp_path / "slow", readiness_timeout=0.5)
    supervisor = RuntimeSupervisor(make_config(runtime_dir), catalog_for(templates))
    await supervisor.open()
    try:
        status = await supervisor.start(spec("slow", "--ready-after", "60"))
        assert status.state is RuntimeState.FAILED
        assert status.message is not None
        assert status.message.startswith("not ready within 0.5 s")
        assert "runtime ready" in status.message  # its last output, for the operator
        record = [line for line in await supervisor.logs("slow") if "pid" in line]
        pid = int(record[-1].split(" pid ")[1].split()[0])
        assert gone(pid)
    finally:
        await supervisor.close()


async def test_a_missing_executable_or_value_fails_clearly(
    tmp_path: Path, runtime_dir: Path, templates: Path
) -> None:
    (templates / "missing.yaml").write_text(
        "name: missing\ncommand: [/nonexistent/runtime, '{port}']\n", encoding="utf-8"
    )
    supervisor = RuntimeSupervisor(make_config(runtime_dir), catalog_for(templates))
    await supervisor.open()
    try:
        status = await supervisor.start(
            RuntimeSpec(runtime_id="m", template="missing", model_name="x")
        )
        assert status.state is RuntimeState.FAILED
        assert status.message is not None
        assert "could not start" in status.message
        with pytest.raises(TemplateError, match="model_path"):
            await supervisor.start(RuntimeSpec(runtime_id="v", template="vllm", model_name="x"))
        with pytest.raises(TemplateError, match="no runtime template"):
            await supervisor.start(RuntimeSpec(runtime_id="n", template="nope", model_name="x"))
    finally:
        await supervisor.close()


def test_logs_rotate_by_copy_and_truncate(tmp_path: Path) -> None:
    path = tmp_path / "r.log"
    path.write_text("".join(f"line {i}\n" for i in range(1000)), encoding="utf-8")
    assert logfiles.rotate_if_large(path, max_bytes=100, backups=2)
    assert path.stat().st_size == 0
    with path.open("a", encoding="utf-8") as handle:
        handle.write("after\n")
    assert logfiles.tail(path, 3) == ["line 998", "line 999", "after"]
    assert logfiles.rotate_if_large(path, max_bytes=1, backups=2)
    assert (tmp_path / "r.log.2").exists()
    assert not logfiles.rotate_if_large(path, max_bytes=100, backups=2)


async def test_a_running_runtime_log_is_capped(runtime_dir: Path, templates: Path) -> None:
    supervisor = RuntimeSupervisor(
        make_config(runtime_dir, log_max_bytes=2000, log_backups=1), catalog_for(templates)
    )
    await supervisor.open()
    try:
        status = await supervisor.start(spec("chatty"))
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                await client.get(f"{status.url}/health")
        log = supervisor.log_path("chatty")
        await eventually(lambda: log.with_name("chatty.log.1").exists(), within=5)
        await eventually(lambda: log.stat().st_size < 2000 + 500, within=5)
        assert (await supervisor.logs("chatty", 5))[-1] == "request /health"
    finally:
        await supervisor.close()


# --- reconciliation after a budapp restart -------------------------------------------------------


def run_host(runtime_dir: Path, templates: Path, specs: list[RuntimeSpec]) -> list[dict[str, Any]]:
    """Runs a budapp stand-in that launches `specs`, kills it with SIGKILL once they run, and
    returns their statuses. It is waited for: a killed process that still has threads
    exiting holds its files (the supervisor lock) although it already reads as a zombie."""
    payload = json.dumps([s.model_dump(mode="json") for s in specs])
    host = subprocess.Popen(  # noqa: S603 - our own fixture script
        [
            sys.executable,
            str(FIXTURES / "supervisor_host.py"),
            str(runtime_dir),
            str(templates),
            payload,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert host.stdout is not None
    statuses: list[dict[str, Any]] = json.loads(host.stdout.readline())
    host.kill()  # budapp dies; its runtimes live on in their sessions
    host.wait(timeout=10)
    host.stdout.close()
    return statuses


async def test_reconcile_after_a_crash_adopts_wanted_runtimes_and_kills_the_rest(
    runtime_dir: Path, templates: Path
) -> None:
    keep, drop, changed = spec("keep"), spec("drop"), spec("changed")
    statuses = await asyncio.to_thread(run_host, runtime_dir, templates, [keep, drop, changed])
    pids = {s["runtime_id"]: s["pid"] for s in statuses}
    assert not any(gone(pid) for pid in pids.values())

    supervisor = RuntimeSupervisor(make_config(runtime_dir), catalog_for(templates))
    await supervisor.open()
    recorder = Recorder()
    supervisor.subscribe(recorder)
    try:
        wanted_changed = spec("changed", "--ready-after", "0")
        unknown = RuntimeSpec(runtime_id="unknown", template="removed", model_name="m")
        report = await supervisor.reconcile([keep, wanted_changed, spec("new"), unknown])
        assert report.failed == ["unknown"]
        assert report.adopted == ["keep"]
        assert sorted(report.killed) == ["changed", "drop"]
        assert sorted(report.started) == ["changed", "new"]
        assert gone(pids["drop"])
        assert gone(pids["changed"])
        adopted = await supervisor.wait_settled("keep")
        assert adopted.state is RuntimeState.RUNNING
        assert adopted.pid == pids["keep"]  # the same process: no duplicate
        assert (await supervisor.wait_settled("new")).state is RuntimeState.RUNNING
        assert (await supervisor.wait_settled("changed")).pid != pids["changed"]
        records = StateFile(runtime_dir / "state.json").load()
        assert sorted(records) == ["changed", "keep", "new"]

        # An adopted runtime that dies is restarted like any other.
        os.kill(pids["keep"], signal.SIGKILL)
        await eventually(
            lambda: (
                recorder.states("keep")[-1:] == ["RUNNING"]
                and supervisor.status("keep").pid != pids["keep"]
            )
        )
        assert supervisor.status("keep").restarts == 1

        # Reconciling again changes nothing.
        again = await supervisor.reconcile([keep, wanted_changed, spec("new")])
        assert again.adopted == again.killed == again.started == again.stopped == []
    finally:
        await supervisor.close()
    assert StateFile(runtime_dir / "state.json").load() == {}


async def test_reconcile_never_kills_a_pid_whose_create_time_differs(
    runtime_dir: Path, templates: Path
) -> None:
    # An unrelated process; its pid is what a recycled runtime pid would look like.
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # noqa: ASYNC220
    try:
        runtime_dir.mkdir(parents=True)  # noqa: ASYNC240
        created = psutil.Process(stranger.pid).create_time()
        # A record naming the stranger's pid: as if our runtime died and the pid was reused.
        StateFile(runtime_dir / "state.json").save(
            {
                "old": ProcessRecord(
                    spec=spec("old"), pid=stranger.pid, create_time=created - 5, mark="m", port=1
                ),
                # Even with the right create time, a process without our mark is not ours.
                "unmarked": ProcessRecord(
                    spec=spec("unmarked"), pid=stranger.pid, create_time=created, mark="m", port=2
                ),
            }
        )
        supervisor = RuntimeSupervisor(make_config(runtime_dir), catalog_for(templates))
        await supervisor.open()
        report = await supervisor.reconcile([])
        await supervisor.close()
        assert report.killed == report.adopted == []
        assert stranger.poll() is None
        assert StateFile(runtime_dir / "state.json").load() == {}
    finally:
        stranger.kill()
        stranger.wait()


async def test_reconcile_stops_supervised_runtimes_no_longer_wanted(
    supervisor: RuntimeSupervisor,
) -> None:
    status = await supervisor.start(spec("old"))
    assert status.pid is not None
    report = await supervisor.reconcile([])
    assert report.stopped == ["old"]
    assert gone(status.pid)


async def test_close_can_leave_runtimes_for_the_next_process(
    runtime_dir: Path, templates: Path
) -> None:
    first = RuntimeSupervisor(make_config(runtime_dir), catalog_for(templates))
    await first.open()
    status = await first.start(spec("lasting"))
    await first.close(stop_runtimes=False)
    assert status.pid is not None
    assert not gone(status.pid)
    second = RuntimeSupervisor(make_config(runtime_dir), catalog_for(templates))
    await second.open()
    try:
        assert (await second.reconcile([spec("lasting")])).adopted == ["lasting"]
    finally:
        await second.close()
    assert gone(status.pid)


async def test_reconcile_kills_a_marked_orphan_whose_template_is_gone(
    runtime_dir: Path, templates: Path
) -> None:
    runtime_dir.mkdir(parents=True)  # noqa: ASYNC240
    env = {**os.environ, MARK_VARIABLE: "orphan-mark"}
    orphan = processes.spawn(
        [sys.executable, "-c", "import time; time.sleep(60)"], env, runtime_dir / "o.log"
    )
    # Popen returns while execve may still be setting up the new image (vfork): its
    # environment reads empty until then.
    await eventually(lambda: processes.has_mark(orphan.pid, "orphan-mark"))
    created = psutil.Process(orphan.pid).create_time()
    record = ProcessRecord(
        spec=RuntimeSpec(runtime_id="o", template="removed", model_name="m"),
        pid=orphan.pid,
        create_time=created,
        mark="orphan-mark",
        port=1,
    )
    StateFile(runtime_dir / "state.json").save({"o": record})
    supervisor = RuntimeSupervisor(make_config(runtime_dir), catalog_for(templates))
    await supervisor.open()
    try:
        report = await supervisor.reconcile([])
    finally:
        await supervisor.close()
    assert report.killed == ["o"]
    assert orphan.wait(timeout=5) == -signal.SIGTERM


async def test_one_supervisor_per_runtime_directory(
    supervisor: RuntimeSupervisor, runtime_dir: Path, templates: Path
) -> None:
    second = RuntimeSupervisor(make_config(runtime_dir), catalog_for(templates))
    with pytest.raises(SupervisorBusy, match="another budapp process"):
        await second.open()
    await supervisor.close()
    await second.open()
    await second.close()


def test_console_scripts_are_found_next_to_the_interpreter(tmp_path: Path) -> None:
    interpreter_dir = Path(sys.executable).parent
    assert processes.resolve_executable("python", str(tmp_path)).startswith(str(interpreter_dir))
    assert processes.resolve_executable("no-such-runtime", str(tmp_path)) == "no-such-runtime"
