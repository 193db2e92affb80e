"""Run as a separate process by test_crash_recovery: a budapp on the embedded default (its own
SQLite database, the local cluster registered at first start) that deploys an endpoint of two
budapp-sim replicas.

`start`: creates and deploys the endpoint, then kills itself with SIGKILL as soon as the first
replica has started, as a crashed host would. `resume`: starts budapp again and waits for the
endpoint to be RUNNING, then reports its runtimes and how long the resumption took."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import httpx

from budapp.core import migrate
from budapp.core.components import RUNTIME_SUPERVISOR, components
from budapp.core.db import session_scope
from budapp.endpoints.models import Endpoint, EndpointStatus
from budapp.main import create_app
from budapp.settings import Settings
from budapp.workflows.models import WorkflowStep

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
        replica_id="crash-deploy-replica",
        local_cluster_auto_register=True,
        runtime_port_min=int(os.environ.get("CRASH_PORT_MIN", "23000")),
        runtime_port_max=int(os.environ.get("CRASH_PORT_MAX", "23099")),
    )


async def start(data_dir: Path) -> None:
    app = create_app(settings_for(data_dir))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://budapp") as client:
            login = await client.post(
                "/auth/login", json={"email": "admin@budapp.local", "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
            project = await client.post("/projects", json={"name": "demo"}, headers=headers)
            model = await client.post(
                "/models/local",
                json={"name": "tiny", "repo_id": "org/tiny", "parameter_count": 10**9},
                headers=headers,
            )
            clusters = (await client.get("/clusters", headers=headers)).json()["data"]
            endpoint = await client.post(
                "/endpoints",
                json={
                    "project_id": project.json()["data"]["id"],
                    "name": "chat",
                    "model_id": model.json()["data"]["id"],
                    "cluster_id": clusters[0]["id"],
                    "runtime": "sim",
                    "replicas": 2,
                },
                headers=headers,
            )
            endpoint_id = endpoint.json()["data"]["id"]
            deployed = await client.post(f"/endpoints/{endpoint_id}/deploy", headers=headers)
            run_id = uuid.UUID(deployed.json()["data"]["workflow_id"])
        (data_dir / "endpoint-id").write_text(endpoint_id)
        for _ in range(600):
            async with session_scope(components(app).session_factory) as session:
                step = await session.get(WorkflowStep, await _step_id(session, run_id))
                if step is not None and (step.detail or "").startswith("replica 1 of 2"):
                    os.kill(os.getpid(), signal.SIGKILL)
            await asyncio.sleep(0.01)
        sys.stdout.write("NEVER REACHED start_replicas\n")


async def _step_id(session: object, run_id: uuid.UUID) -> uuid.UUID | None:
    from sqlalchemy import select  # noqa: PLC0415

    statement = select(WorkflowStep.id).where(
        WorkflowStep.run_id == run_id, WorkflowStep.name == "start_replicas"
    )
    return (await session.execute(statement)).scalar()  # type: ignore[attr-defined, no-any-return]


async def resume(data_dir: Path) -> None:
    began = time.perf_counter()
    app = create_app(settings_for(data_dir))
    endpoint_id = uuid.UUID((data_dir / "endpoint-id").read_text())
    async with app.router.lifespan_context(app):
        started = time.perf_counter()
        for _ in range(1200):
            async with session_scope(components(app).session_factory) as session:
                endpoint = await session.get(Endpoint, endpoint_id)
                assert endpoint is not None
                status = endpoint.status
            if status is EndpointStatus.RUNNING:
                prefix = f"ep-{endpoint_id.hex}-"
                runtimes = [
                    runtime
                    for runtime in components(app)[RUNTIME_SUPERVISOR].statuses()
                    if runtime.runtime_id.startswith(prefix) and runtime.state == "RUNNING"
                ]
                pids = ",".join(str(runtime.pid) for runtime in runtimes)
                sys.stdout.write(
                    f"ENDPOINT RUNNING runtimes={len(runtimes)} pids={pids} "
                    f"resumed_in={time.perf_counter() - started:.3f} "
                    f"with_startup={time.perf_counter() - began:.3f}\n"
                )
                sys.stdout.flush()
                return
            if status is EndpointStatus.ERROR:
                sys.stdout.write(f"ENDPOINT ERROR {endpoint.status_message}\n")
                return
            await asyncio.sleep(0.02)
        sys.stdout.write("ENDPOINT TIMEOUT\n")


if __name__ == "__main__":
    mode, directory = sys.argv[1], Path(sys.argv[2])
    if mode == "start":
        migrate.upgrade(f"sqlite+aiosqlite:///{directory / 'budapp.db'}")
        asyncio.run(start(directory))
    else:
        asyncio.run(resume(directory))
