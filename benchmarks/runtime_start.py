"""Time from `RuntimeSupervisor.start()` to RUNNING for a runtime that is ready as soon as it
listens (tests/fixtures/runtime_server.py), against the runtime's own start-up: the
difference is the supervisor's overhead (spawn, state file, readiness probing).

    uv run python -m benchmarks.runtime_start [ROUNDS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tests.adapters.clusters.conftest import SERVER, write_test_templates

from budapp.adapters.clusters.base import RuntimeSpec
from budapp.adapters.clusters.catalog import TemplateCatalog
from budapp.adapters.clusters.runtime import SupervisorConfig
from budapp.adapters.clusters.supervisor import RuntimeSupervisor


async def own_startup() -> float:
    """The fixture server alone: process start until /health answers 200."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SERVER),
        "--port",
        "21999",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get("http://127.0.0.1:21999/health")).status_code == 200:
                    break
            except httpx.HTTPError:
                await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - started
    process.terminate()
    await process.wait()
    return elapsed


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        catalog = TemplateCatalog.load([write_test_templates(root / "templates")])
        supervisor = RuntimeSupervisor(
            SupervisorConfig(runtime_dir=root / "runtimes", port_range=(21000, 21998)), catalog
        )
        await supervisor.open()
        supervised, alone = [], []
        for index in range(rounds):
            spec = RuntimeSpec(runtime_id=f"bench-{index}", template="fake", model_name="m")
            started = time.perf_counter()
            status = await supervisor.start(spec)
            supervised.append(time.perf_counter() - started)
            assert status.state.value == "RUNNING", status
            await supervisor.stop(spec.runtime_id)
            alone.append(await own_startup())
        await supervisor.close()

    def ms(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1] * 1000

    for name, values in (("supervised start", supervised), ("runtime alone", alone)):
        print(f"{name:18} p50 {ms(values, 50):7.1f} ms   p95 {ms(values, 95):7.1f} ms")
    overhead = [s - a for s, a in zip(supervised, alone, strict=True)]
    print(f"{'overhead':18} p50 {ms(overhead, 50):7.1f} ms   p95 {ms(overhead, 95):7.1f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
