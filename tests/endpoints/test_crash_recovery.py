"""kill -9 of budapp in the middle of a deploy: started again, the deploy workflow resumes and
the endpoint reaches RUNNING with exactly one runtime per replica, none left behind."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


async def _run(mode: str, data_dir: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.endpoints.crash_deploy",
        mode,
        str(data_dir),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    return process.returncode or 0, output.decode()


def _sims_under(data_dir: Path) -> list[psutil.Process]:
    """budapp-sim processes started for this installation: their output goes to a log file in
    data_dir (other test runs on the machine start budapp-sims of their own)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            if "budapp-sim" not in cmdline:
                continue
            files = [Path(file.path) for file in process.open_files()]
        except (psutil.Error, TypeError):
            continue
        if any(file.is_relative_to(data_dir) for file in files):
            found.append(process)
    return found


async def test_a_deploy_killed_halfway_finishes_after_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "budapp"
    data_dir.mkdir()
    before = {process.pid for process in _sims_under(data_dir)}

    code, output = await _run("start", data_dir)
    assert code == -9, output  # SIGKILL, with the first replica started

    code, output = await _run("resume", data_dir)
    assert code == 0, output
    match = re.search(r"ENDPOINT RUNNING runtimes=(\d+) pids=([\d,]+) resumed_in=([\d.]+)", output)
    assert match, output
    assert match.group(1) == "2"
    pids = [int(pid) for pid in match.group(2).split(",")]
    assert len(set(pids)) == 2
    # The resumed budapp stopped its runtimes on shutdown: none is left running.
    await asyncio.sleep(0.5)
    leftovers = [
        process.pid
        for process in _sims_under(data_dir)
        if process.pid not in before
        and process.is_running()
        and process.status() != psutil.STATUS_ZOMBIE
    ]
    assert leftovers == []
