"""kill -9 of budapp in the middle of a benchmark: started again, the run resumes; the stage the
crash cut is closed from the requests it had stored (kept, marked partial) and the next stage
is measured."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from tests.benchmarks.conftest import SimProcess

ROOT = Path(__file__).resolve().parents[2]


async def _run(mode: str, data_dir: Path, sim_url: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.benchmarks.crash_run",
        mode,
        str(data_dir),
        sim_url,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    return process.returncode or 0, output.decode()


async def test_a_benchmark_killed_mid_stage_resumes_and_keeps_what_it_measured(
    tmp_path: Path, sim_process: SimProcess
) -> None:
    sim_url = sim_process("--ttft-ms", "20", "--itl-ms", "5")
    data_dir = tmp_path / "budapp"
    data_dir.mkdir()
    code, output = await _run("start", data_dir, sim_url)
    assert code == -9, output  # SIGKILL during the first stage

    code, output = await _run("resume", data_dir, sim_url)
    assert code == 0, output
    match = re.search(r"RUN (\w+) stages=([\w,]+) succeeded=([\d,]+) partial=(\w+)", output)
    assert match, output
    assert match.group(1) == "SUCCEEDED"
    assert match.group(2) == "interrupted,duration"
    first, second = (int(count) for count in match.group(3).split(","))
    assert first >= 5  # the requests stored before the crash
    assert second > 0
    assert match.group(4) == "True"
