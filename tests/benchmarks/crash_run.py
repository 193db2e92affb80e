"""Run as a separate process by test_crash_recovery: a budapp on its own SQLite database that
benchmarks a budapp-sim (started by the test, so that it outlives this process).

`start`: creates a two-stage sweep of the simulator and kills itself with SIGKILL once the first
stage has stored some requests, as a crashed host would. `resume`: starts budapp again (same
replica id), waits for the run to end and reports its stages."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import httpx

from budapp.benchmarks.models import BenchmarkRun
from budapp.core import migrate
from budapp.core.components import components
from budapp.core.db import session_scope
from budapp.main import create_app
from budapp.settings import Settings

PASSWORD = "bootstrap-password"


def settings_for(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'budapp.db'}",
        access_log=False,
        log_level="WARNING",
        password_time_cost=1,
        password_memory_kib=64,
        admin_password=PASSWORD,
        replica_id="crash-benchmark-replica",
        local_cluster_auto_register=False,
        webhook_worker_enabled=False,
        storage_sweep_interval_seconds=0,
    )


async def start(data_dir: Path, sim_url: str) -> None:
    app = create_app(settings_for(data_dir))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://budapp") as client:
            login = await client.post(
                "/auth/login", json={"email": "admin@budapp.local", "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
            project = await client.post("/projects", json={"name": "demo"}, headers=headers)
            created = await client.post(
                f"/projects/{project.json()['data']['id']}/benchmarks",
                json={
                    "name": "crash",
                    "target": {"kind": "url", "base_url": sim_url + "/v1", "model": "m"},
                    "profile": {"kind": "sweep", "points": 2, "max_concurrency": 2},
                    "prompts": {"input_tokens": {"value": 8}, "output_tokens": {"value": 4}},
                    "bounds": {"duration_seconds": 3, "drain_seconds": 2},
                },
                headers=headers,
            )
            assert created.status_code == 202, created.text
            run_id = uuid.UUID(created.json()["data"]["id"])
        (data_dir / "run-id").write_text(str(run_id))
        for _ in range(1000):
            async with session_scope(components(app).session_factory) as session:
                run = await session.get(BenchmarkRun, run_id)
                done = (run.progress or {}).get("requests_done", 0) if run else 0
            if done >= 5:
                os.kill(os.getpid(), signal.SIGKILL)
            await asyncio.sleep(0.02)
        sys.stdout.write("NEVER REACHED the first stage\n")


async def resume(data_dir: Path) -> None:
    app = create_app(settings_for(data_dir))
    run_id = uuid.UUID((data_dir / "run-id").read_text())
    async with app.router.lifespan_context(app):
        for _ in range(1500):
            async with session_scope(components(app).session_factory) as session:
                run = await session.get(BenchmarkRun, run_id)
                assert run is not None
                if run.status.finished:
                    stages = (run.results or {}).get("stages", [])
                    reasons = ",".join(stage["stop_reason"] for stage in stages)
                    counts = ",".join(
                        str(stage["metrics"]["requests"]["succeeded"]) for stage in stages
                    )
                    sys.stdout.write(
                        f"RUN {run.status.value} stages={reasons} succeeded={counts} "
                        f"partial={run.partial}\n"
                    )
                    return
            await asyncio.sleep(0.02)
        sys.stdout.write("RUN TIMEOUT\n")


if __name__ == "__main__":
    mode, directory, url = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    if mode == "start":
        migrate.upgrade(f"sqlite+aiosqlite:///{directory / 'budapp.db'}")
        asyncio.run(start(directory, url))
    else:
        asyncio.run(resume(directory))
