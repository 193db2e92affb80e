"""A workflow used only by the tests: three steps whose behaviour the arguments control
through files, so that a test (or a process that crashes) can steer a run from outside.

- every attempt of a step appends its name to `<dir>/executions`;
- `<dir>/fail-<step>` present: that step fails (retried up to 3 attempts);
- `<dir>/hold-<step>` present: that step waits until the file is removed;
- `<dir>/crash-<step>` present: the process dies (os._exit) inside that step, once.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from budapp.workflows import engine

KIND = "test.pipeline"
STEPS = [("prepare", "Prepare"), ("work", "Do the work"), ("finish", "Finish")]


def _control(arguments: dict[str, Any]) -> Path:
    return Path(arguments["dir"])


async def _behave(run_id: str, directory: str, name: str) -> str:
    control = Path(directory)
    with (control / "executions").open("a") as log:
        log.write(f"{name}\n")
    crash = control / f"crash-{name}"
    if crash.exists():
        crash.unlink()
        os._exit(17)
    while (control / f"hold-{name}").exists():
        await engine.note(run_id, name, "holding")
        await asyncio.sleep(0.05)
    if (control / f"fail-{name}").exists():
        raise RuntimeError(f"{name} was told to fail")
    return name


@engine.step("prepare", max_attempts=3, interval_seconds=0.05, backoff_rate=1.0)
async def prepare(run_id: str, directory: str) -> str:
    return await _behave(run_id, directory, "prepare")


@engine.step("work", max_attempts=3, interval_seconds=0.05, backoff_rate=1.0, timeout_seconds=30)
async def work(run_id: str, directory: str) -> str:
    return await _behave(run_id, directory, "work")


@engine.step("finish", max_attempts=1)
async def finish(run_id: str, directory: str) -> str:
    return await _behave(run_id, directory, "finish")


@engine.definition(KIND, "test", STEPS)
async def pipeline(run_id: str) -> None:
    async def body(arguments: dict[str, Any]) -> None:
        directory = str(_control(arguments))
        await prepare(run_id, directory)
        await work(run_id, directory)
        await finish(run_id, directory)

    await engine.execute(run_id, body)
