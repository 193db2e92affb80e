"""A replica that dies in the middle of a workflow: started again under the same replica id,
it resumes the run from the step that was interrupted and finishes it, exactly once."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
from fastapi import FastAPI

from tests.factories import World

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


async def test_a_run_interrupted_by_a_crash_finishes_after_restart(
    app: FastAPI, client: httpx.AsyncClient, world: World, db_url: str, tmp_path: Path
) -> None:
    control = tmp_path / "control"
    control.mkdir()
    (control / "crash-work").touch()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    arguments = (db_url, str(data_dir), str(control), str(world.org_a))

    code, output = await _run("start", *arguments)
    assert code == 17, output  # died inside the "work" step
    assert (control / "executions").read_text().split() == ["prepare", "work"]

    code, output = await _run("resume", *arguments)
    assert code == 0, output
    assert "RUN SUCCEEDED" in output
    # "prepare" was not run again: its result was recorded before the crash.
    assert (control / "executions").read_text().split() == ["prepare", "work", "work", "finish"]
    run_id = (control / "run-id").read_text()
    body = (await client.get(f"/workflows/{run_id}", headers=world["org_admin"].headers)).json()
    assert body["data"]["status"] == "SUCCEEDED"
    assert [s["attempts"] for s in body["data"]["steps"]] == [1, 2, 1]
