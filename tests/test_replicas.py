"""budapp as several replicas: three `budapp serve` processes on one PostgreSQL database (a
database of this test's own) and one Redis, deploying onto the Kubernetes API emulator. Across
them: a workflow runs exactly once; rate limits are global; WebSocket events reach clients on
every replica; an API key revoked on one stops working on all at once; the audit chain stays
one linear chain under concurrent writes from all three; a replica killed mid-deploy has its
run finished by another."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from budapp.admin import generate_key
from budapp.core import migrate
from tests.conftest import is_postgres, recreate_postgres_database
from tests.events.test_websocket import receive, stream
from tests.fixtures.kube_apiserver import KubeApiServer, cpu_node, free_port, kube_apiserver
from tests.gateway.conftest import within_one_window
from tests.redis_buses import require_redis

PASSWORD = "replicas-password"
NAMESPACE = "models"
REDIS_URL = os.environ.get("BUDAPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
DEPLOYMENTS = ("POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments")


class Replica:
    def __init__(self, name: str, port: int, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.address = f"127.0.0.1:{port}"
        self.process = process
        self.client = httpx.AsyncClient(base_url=self.url, timeout=30, trust_env=False)


@pytest.fixture
async def database(db_url: str) -> str:
    if not is_postgres(db_url):
        pytest.skip("several replicas share one PostgreSQL database (SQLite is one process's)")
    await require_redis(REDIS_URL)
    url = f"{db_url}_replicas"
    await recreate_postgres_database(url)
    await asyncio.to_thread(migrate.upgrade, url)
    return url


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[KubeApiServer]:
    async with kube_apiserver(tmp_path) as api:
        api.add_node(cpu_node("cpu-a"))
        yield api


@pytest.fixture
async def replicas(database: str, tmp_path: Path) -> AsyncIterator[list[Replica]]:
    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    shared = {
        "BUDAPP_DATABASE_URL": database,
        "BUDAPP_REDIS_URL": REDIS_URL,
        "BUDAPP_JWT_PRIVATE_KEY": key.decode(),
        "BUDAPP_ENCRYPTION_KEYS": generate_key(),
        "BUDAPP_ADMIN_PASSWORD": PASSWORD,
        "BUDAPP_PASSWORD_TIME_COST": "1",
        "BUDAPP_PASSWORD_MEMORY_KIB": "64",
        "BUDAPP_AUTO_MIGRATE": "false",
        "BUDAPP_LOCAL_CLUSTER_AUTO_REGISTER": "false",
        "BUDAPP_LOG_LEVEL": "WARNING",
        "BUDAPP_ACCESS_LOG": "false",
        # Long enough that only the event bus can explain a revocation seen at once.
        "BUDAPP_API_KEY_CACHE_TTL_SECONDS": "300",
        "BUDAPP_WORKFLOW_HEARTBEAT_SECONDS": "0.5",
        "BUDAPP_WORKFLOW_TAKEOVER_SECONDS": "3",
        "BUDAPP_KUBERNETES_POLL_SECONDS": "0.2",
        "BUDAPP_CLUSTER_RECONCILE_INTERVAL_SECONDS": "0",
        "BUDAPP_WEBHOOK_WORKER_ENABLED": "false",
        # The test PostgreSQL serves other suites too (max_connections 100): small pools.
        "BUDAPP_DATABASE_POOL_SIZE": "4",
    }
    started = []
    for index in range(3):
        name, port = f"replica-{index + 1}", free_port()
        data_dir = tmp_path / name
        data_dir.mkdir()
        log = (tmp_path / f"{name}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "budapp"),
            "serve",
            "--port",
            str(port),
            env={
                **os.environ,
                **shared,
                "BUDAPP_REPLICA_ID": name,
                "BUDAPP_DATA_DIR": str(data_dir),
            },
            stdout=log,
            stderr=log,
        )
        started.append(Replica(name, port, process))
    try:
        await asyncio.gather(*(_ready(replica, tmp_path) for replica in started))
        yield started
    finally:
        for replica in started:
            if replica.process.returncode is None:
                replica.process.send_signal(signal.SIGTERM)
        for replica in started:
            try:
                await asyncio.wait_for(replica.process.wait(), 30)
            except TimeoutError:
                replica.process.kill()
            await replica.client.aclose()


async def _ready(replica: Replica, logs: Path) -> None:
    # Three interpreters importing budapp at once on a small, busy machine: allow a while.
    for _ in range(1800):
        if replica.process.returncode is not None:
            text = (logs / f"{replica.name}.log").read_text(errors="replace")
            raise AssertionError(f"{replica.name} exited: {text[-3000:]}")
        try:
            if (await replica.client.get("/ready")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{replica.name} never became ready")


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"] if response.content else None


async def _wait_run(replica: Replica, headers: dict[str, str], run_id: str) -> dict[str, Any]:
    for _ in range(600):
        run: dict[str, Any] = await _ok(
            await replica.client.get(f"/workflows/{run_id}", headers=headers)
        )
        if run["status"] in {"SUCCEEDED", "FAILED", "CANCELLED"}:
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish: {run}")


async def _chat(replica: Replica, key: str, model: str) -> int:
    response = await replica.client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        headers={"Authorization": f"Bearer {key}"},
    )
    return response.status_code


async def test_three_replicas_share_the_work(replicas: list[Replica], kube: KubeApiServer) -> None:
    first, second, third = replicas
    login = await _ok(
        await first.client.post(
            "/auth/login", json={"email": "admin@budapp.local", "password": PASSWORD}
        )
    )
    admin = {"Authorization": f"Bearer {login['access_token']}"}
    project = await _ok(
        await first.client.post("/projects", json={"name": "replicas"}, headers=admin), 201
    )
    credential = await _ok(
        await second.client.post(
            "/credentials",
            json={
                "name": "kube",
                "spec": {"kind": "kubeconfig", "kubeconfig": kube.kubeconfig(kube.token())},
            },
            headers=admin,
        ),
        201,
    )
    cluster = await _ok(
        await second.client.post(
            "/clusters",
            json={
                "name": "k8s",
                "provider": "kubernetes",
                "kubernetes": {
                    "credential_id": credential["id"],
                    "namespace": NAMESPACE,
                    "service_type": "NodePort",
                    "service_url": "http://127.0.0.1:{node_port}",
                },
            },
            headers=admin,
        ),
        201,
    )
    await _ok(await third.client.post(f"/clusters/{cluster['id']}/onboard", headers=admin))

    async def endpoint(name: str) -> dict[str, Any]:
        model = await _ok(
            await first.client.post(
                "/models/local",
                json={"name": name, "repo_id": f"example/{name}", "parameter_count": 10**9},
                headers=admin,
            ),
            201,
        )
        created: dict[str, Any] = await _ok(
            await first.client.post(
                "/endpoints",
                json={
                    "project_id": project["id"],
                    "name": name,
                    "model_id": model["id"],
                    "cluster_id": cluster["id"],
                    "runtime": "sim",
                },
                headers=admin,
            ),
            201,
        )
        return created

    # --- a workflow runs exactly once, and its events reach clients on the other replicas.
    served = await endpoint("served")
    async with (
        stream(second.address, login["access_token"]) as on_second,
        stream(third.address, login["access_token"]) as on_third,
    ):
        deploy = await _ok(
            await first.client.post(f"/endpoints/{served['id']}/deploy", headers=admin), 202
        )
        run = await _wait_run(third, admin, deploy["workflow_id"])
        assert run["status"] == "SUCCEEDED", run
        for connection in (on_second, on_third):
            seen = set()
            while "SUCCEEDED" not in seen:
                message = await receive(connection)
                if (
                    message["type"] == "workflow.status"
                    and message["data"]["workflow_id"] == run["id"]
                ):
                    seen.add(message["data"]["status"])
    assert kube.requests.count(DEPLOYMENTS) == 1
    assert all(step["attempts"] == 1 for step in run["steps"]), run["steps"]

    router = await _ok(
        await first.client.post(
            f"/projects/{project['id']}/routers",
            json={"name": "chat", "targets": [{"kind": "endpoint", "endpoint_id": served["id"]}]},
            headers=admin,
        ),
        201,
    )

    async def new_key() -> str:
        created = await _ok(
            await second.client.post(
                f"/projects/{project['id']}/api-keys",
                json={"name": uuid.uuid4().hex[:8]},
                headers=admin,
            ),
            201,
        )
        return str(created["key"]), str(created["id"])

    # --- an API key revoked on one replica stops working on all of them at once.
    revoked, revoked_id = await new_key()
    for replica in replicas:
        assert await _chat(replica, revoked, router["name"]) == 200
    await _ok(
        await first.client.delete(
            f"/projects/{project['id']}/api-keys/{revoked_id}", headers=admin
        ),
        204,
    )
    for replica in (second, third):
        statuses = []
        for _ in range(20):  # pub/sub delivery: well under a second
            statuses.append(await _chat(replica, revoked, router["name"]))
            if statuses[-1] == 401:
                break
            await asyncio.sleep(0.05)
        assert statuses[-1] == 401, (replica.name, statuses)
        assert len(statuses) <= 5, statuses

    # --- rate limits are global: six calls spread over three replicas use up one budget.
    key, _ = await new_key()
    await _ok(
        await third.client.put(
            f"/projects/{project['id']}/rate-limits", json={"key_rpm": 6}, headers=admin
        )
    )
    # Counts start over each calendar minute: nine calls on a busy machine must fit in one.
    await within_one_window(40)
    spread = itertools.cycle(replicas)
    answered = [await _chat(next(spread), key, router["name"]) for _ in range(6)]
    assert answered == [200] * 6
    assert {await _chat(replica, key, router["name"]) for replica in replicas} == {429}

    # --- the audit chain stays one linear chain under concurrent writes from all three.
    writes = [
        replica.client.post("/projects", json={"name": f"p-{index}"}, headers=admin)
        for index, replica in zip(range(30), itertools.cycle(replicas), strict=False)
    ]
    assert {response.status_code for response in await asyncio.gather(*writes)} == {201}
    verified = await _ok(await second.client.post("/audit/verify", headers=admin))
    assert verified["ok"] is True, verified
    assert verified["first_broken"] is None
    assert verified["last_sequence"] - verified["first_sequence"] + 1 == verified["checked"]

    # --- a replica killed mid-deploy: another takes its run over and finishes it.
    late = await endpoint("late")
    nodes = dict(kube.nodes)
    kube.nodes.clear()  # the pod waits for a node: the deploy is under way
    deploy = await _ok(
        await first.client.post(f"/endpoints/{late['id']}/deploy", headers=admin), 202
    )
    name = f"ep-{uuid.UUID(late['id']).hex}-0"
    while name not in kube.names("deployments", NAMESPACE):  # noqa: ASYNC110 - polls the emulator
        await asyncio.sleep(0.05)
    first.process.send_signal(signal.SIGKILL)
    await first.process.wait()
    kube.nodes.update(nodes)
    run = await _wait_run(second, admin, deploy["workflow_id"])
    assert run["status"] == "SUCCEEDED", run
    status = await _ok(await third.client.get(f"/endpoints/{late['id']}", headers=admin))
    assert status["status"] == "RUNNING"
    # The replica that finished it found the Deployment the dead one had made.
    assert kube.requests.count(DEPLOYMENTS) == 2
    assert json.dumps(run["steps"]).count('"start_replicas"') == 1
