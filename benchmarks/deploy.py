"""Deploy request → endpoint RUNNING, for one budapp-sim replica on the local cluster, with
the runtime's own start-up (a Python process coming up and answering /health) subtracted: what
remains is the platform's overhead (planning, the workflow, its steps, status writes).

    uv run python -m benchmarks.deploy --runs 20

Runs an app in-process on a fresh SQLite installation in a temporary directory."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from budapp.core import migrate
from budapp.core.components import CLUSTER_CONNECTOR, components
from budapp.main import create_app
from budapp.settings import Settings


async def main(runs: int) -> None:  # noqa: PLR0915 - one linear script
    with tempfile.TemporaryDirectory() as directory:
        data_dir = Path(directory)
        url = f"sqlite+aiosqlite:///{data_dir / 'budapp.db'}"
        await asyncio.to_thread(migrate.upgrade, url)
        settings = Settings(
            data_dir=data_dir,
            database_url=url,
            access_log=False,
            log_level="WARNING",
            admin_password="benchmark-password",
            local_cluster_auto_register=True,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            runtime_seconds: list[float] = []
            provider = components(app)[CLUSTER_CONNECTOR].local
            original = provider.deploy_runtime

            async def timed(spec: Any) -> Any:
                began = time.perf_counter()
                try:
                    return await original(spec)
                finally:
                    runtime_seconds.append(time.perf_counter() - began)

            provider.deploy_runtime = timed
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
                login = await client.post(
                    "/auth/login",
                    json={"email": "admin@budapp.local", "password": "benchmark-password"},
                )
                headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
                project = (
                    await client.post("/projects", json={"name": "bench"}, headers=headers)
                ).json()
                model = (
                    await client.post(
                        "/models/local",
                        json={"name": "tiny", "repo_id": "org/tiny", "parameter_count": 10**9},
                        headers=headers,
                    )
                ).json()
                cluster = (await client.get("/clusters", headers=headers)).json()["data"][0]["id"]
                totals, overheads = [], []
                for run in range(runs):
                    created = await client.post(
                        "/endpoints",
                        json={
                            "project_id": project["data"]["id"],
                            "name": f"e{run}",
                            "model_id": model["data"]["id"],
                            "cluster_id": cluster,
                            "runtime": "sim",
                        },
                        headers=headers,
                    )
                    endpoint = created.json()["data"]["id"]
                    runtime_seconds.clear()
                    began = time.perf_counter()
                    await client.post(f"/endpoints/{endpoint}/deploy", headers=headers)
                    while True:
                        body = (await client.get(f"/endpoints/{endpoint}", headers=headers)).json()
                        if body["data"]["status"] in ("RUNNING", "ERROR"):
                            break
                        await asyncio.sleep(0.002)
                    total = time.perf_counter() - began
                    assert body["data"]["status"] == "RUNNING", body
                    totals.append(total)
                    overheads.append(total - sum(runtime_seconds))
                    # The deploy run is still finishing its bookkeeping when the status flips.
                    while True:
                        undeploy = await client.post(
                            f"/endpoints/{endpoint}/undeploy", headers=headers
                        )
                        if undeploy.status_code == 202:
                            break
                        await asyncio.sleep(0.01)
                    run_id = undeploy.json()["data"]["workflow_id"]
                    while True:
                        run_body = (
                            await client.get(f"/workflows/{run_id}", headers=headers)
                        ).json()
                        if run_body["data"]["status"] in ("SUCCEEDED", "FAILED"):
                            break
                        await asyncio.sleep(0.01)

    def ms(values: list[float], q: float) -> str:
        ordered = sorted(values)
        return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.0f} ms"

    print(f"runs: {runs}")
    print(f"deploy -> RUNNING, total:          p50 {ms(totals, 0.5)}  p90 {ms(totals, 0.9)}")
    print(
        f"platform overhead (runtime start excluded): p50 {ms(overheads, 0.5)}  "
        f"p90 {ms(overheads, 0.9)}  mean {statistics.mean(overheads) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    asyncio.run(main(parser.parse_args().runs))
