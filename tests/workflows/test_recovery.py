"""A replica that dies in the middle of a workflow: started again under the same replica id,
it resumes the run from the step that was interrupted and finishes it, exactly once."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def _run(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.workflows.crash_app",
        *args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, output.decode()


async def test_a_run_interrupted_by_a_crash_finishes_after_restart(tmp_path: Path) -> None:
    control = tmp_path / "control"
    control.mkdir()
    (control / "crash-work").touch()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # A database of its own: a process killed mid-transaction must not disturb the suite's.
    database = f"sqlite+aiosqlite:///{data_dir / 'budapp.db'}"
    arguments = (database, str(data_dir), str(control))

    code, output = await _run("start", *arguments)
    assert code == 17, output  # died inside the "work" step
    assert (control / "executions").read_text().split() == ["prepare", "work"]

    code, output = await _run("resume", *arguments)
    assert code == 0, output
    # "prepare" was not run again (its result was recorded before the crash); "work" was.
    assert "RUN SUCCEEDED attempts=1,2,1" in output
    assert (control / "executions").read_text().split() == ["prepare", "work", "work", "finish"]
