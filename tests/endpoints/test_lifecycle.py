"""An endpoint's whole life on the local cluster with real budapp-sim runtimes: plan, create,
deploy (a workflow), serve, scale, logs, undeploy, delete; and the refusals on the way."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psutil
import pytest
from fastapi import FastAPI

from budapp.core.components import RUNTIME_SUPERVISOR, components
from budapp.events.hub import EVENT_HUB
from tests.endpoints.conftest import wait_for_run
from tests.factories import World


def _create_body(world: World, model: dict[str, Any], cluster: str, **extra: Any) -> dict[str, Any]:
    return {
        "project_id": str(world.project_a),
        "name": "chat",
        "model_id": model["id"],
        "cluster_id": cluster,
        "runtime": "sim",
        "replicas": 2,
        **extra,
    }


async def test_plan_is_a_dry_run(
    client: httpx.AsyncClient, world: World, model: dict[str, Any], cluster: str
) -> None:
    response = await client.post(
        "/endpoints/plan",
        json={"model_id": model["id"], "runtime": "sim", "replicas": 2, "max_concurrency": 4},
        headers=world["user"].headers,
    )
    assert response.status_code == 200, response.text
    plan = response.json()["data"]
    assert plan["fits"] is True
    assert plan["device"] == "none"
    assert len(plan["placements"]) == 2
    # 1.1B parameters in bf16.
    assert plan["memory"]["weights_bytes"] == 2_200_000_000
    assert plan["memory"]["kv_cache_bytes"] > 0
    assert plan["memory"]["assumptions"]  # the model's layers are unknown: estimated, said so
    # A GPU-only runtime on a host without GPUs: no fit, and why.
    gpu = await client.post(
        "/endpoints/plan",
        json={"model_id": model["id"], "runtime": "vllm", "cluster_id": cluster},
        headers=world["user"].headers,
    )
    body = gpu.json()["data"]
    assert body["fits"] is False
    assert any("GPU" in reason for reason in body["reasons"].values())


async def test_deploy_serve_scale_undeploy_delete(
    app: FastAPI, client: httpx.AsyncClient, world: World, model: dict[str, Any], cluster: str
) -> None:
    headers = world["user"].headers  # a developer of project A
    # What a WebSocket of this user is fed (the socket itself is tested in tests/events).
    stream = components(app)[EVENT_HUB].connect(world.org_a, world["user"].id)
    created = await client.post(
        "/endpoints", json=_create_body(world, model, cluster), headers=headers
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()["data"]
    assert endpoint["status"] == "PENDING"
    endpoint_id = endpoint["id"]

    deployed = await client.post(f"/endpoints/{endpoint_id}/deploy", headers=headers)
    assert deployed.status_code == 202, deployed.text
    run_id = deployed.json()["data"]["workflow_id"]
    assert deployed.json()["data"]["status"] == "DEPLOYING"
    # A second deploy while the first runs is refused.
    again = await client.post(f"/endpoints/{endpoint_id}/deploy", headers=headers)
    assert again.status_code == 409

    run = await wait_for_run(client, run_id, headers)
    assert run["status"] == "SUCCEEDED", run
    assert [step["status"] for step in run["steps"]] == ["SUCCEEDED"] * 5
    events = []
    while not stream.queue.empty():
        events.append(stream.queue.get_nowait())
    components(app)[EVENT_HUB].disconnect(stream)
    done = [
        event["data"]["step"]
        for event in events
        if event["type"] == "workflow.step" and event["data"]["status"] == "SUCCEEDED"
    ]
    assert done == ["validate", "prepare_model", "start_replicas", "verify", "activate"]
    statuses = [event["data"]["status"] for event in events if event["type"] == "endpoint.status"]
    assert statuses == ["DEPLOYING", "RUNNING"]
    status = (await client.get(f"/endpoints/{endpoint_id}/status", headers=headers)).json()["data"]
    assert status["status"] == "RUNNING"
    assert status["replicas_ready"] == 2
    urls = [replica["url"] for replica in status["replicas"]]
    assert all(urls)

    # The replicas answer OpenAI requests.
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{urls[0]}/v1/chat/completions",
            json={"model": model["name"], "messages": [{"role": "user", "content": "hi"}]},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]

    # The owner was told.
    inbox = (await client.get("/notifications", headers=headers)).json()["data"]
    assert any(item["kind"] == "endpoint.ready" for item in inbox)

    logs = await client.get(
        f"/endpoints/{endpoint_id}/logs", params={"replica": 0}, headers=headers
    )
    assert logs.status_code == 200
    assert logs.json()["data"]["lines"]

    scaled = await client.post(
        f"/endpoints/{endpoint_id}/scale", json={"replicas": 1}, headers=headers
    )
    assert scaled.status_code == 202, scaled.text
    run = await wait_for_run(client, scaled.json()["data"]["workflow_id"], headers)
    assert run["status"] == "SUCCEEDED", run
    status = (await client.get(f"/endpoints/{endpoint_id}/status", headers=headers)).json()["data"]
    assert [(r["index"], r["state"]) for r in status["replicas"]] == [
        (0, "RUNNING"),
        (1, "STOPPED"),
    ]

    # A cluster with a live endpoint cannot be deleted.
    refused = await client.delete(f"/clusters/{cluster}", headers=world["org_admin"].headers)
    assert refused.status_code == 409

    pids = [
        runtime.pid
        for runtime in components(app)[RUNTIME_SUPERVISOR].statuses()
        if runtime.runtime_id.startswith(f"ep-{endpoint_id.replace('-', '')}") and runtime.pid
    ]
    undeployed = await client.post(f"/endpoints/{endpoint_id}/undeploy", headers=headers)
    assert undeployed.status_code == 202, undeployed.text
    run = await wait_for_run(client, undeployed.json()["data"]["workflow_id"], headers)
    assert run["status"] == "SUCCEEDED", run
    endpoint = (await client.get(f"/endpoints/{endpoint_id}", headers=headers)).json()["data"]
    assert endpoint["status"] == "STOPPED"
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids
    )

    deleted = await client.delete(f"/endpoints/{endpoint_id}", headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(f"/endpoints/{endpoint_id}", headers=headers)).status_code == 404


async def test_refusals(
    client: httpx.AsyncClient, world: World, model: dict[str, Any], cluster: str
) -> None:
    headers = world["project_admin"].headers
    bad_runtime = await client.post(
        "/endpoints", json=_create_body(world, model, cluster, runtime="nope"), headers=headers
    )
    assert bad_runtime.status_code == 422
    created = await client.post(
        "/endpoints", json=_create_body(world, model, cluster, runtime="vllm"), headers=headers
    )
    assert created.status_code == 201
    endpoint_id = created.json()["data"]["id"]
    # Same name twice in a project.
    twice = await client.post(
        "/endpoints", json=_create_body(world, model, cluster), headers=headers
    )
    assert twice.status_code == 409
    # No GPU here for vLLM: 409 with the reason, and the endpoint stays PENDING.
    no_room = await client.post(f"/endpoints/{endpoint_id}/deploy", headers=headers)
    assert no_room.status_code == 409
    assert no_room.json()["error"]["details"]
    endpoint = (await client.get(f"/endpoints/{endpoint_id}", headers=headers)).json()["data"]
    assert endpoint["status"] == "PENDING"
    # A move the state table does not allow.
    assert (
        await client.post(f"/endpoints/{endpoint_id}/undeploy", headers=headers)
    ).status_code == 409
    # Bad input.
    for body in ({"replicas": 0}, {"replicas": "two"}, {}):
        response = await client.post(f"/endpoints/{endpoint_id}/scale", json=body, headers=headers)
        assert response.status_code == 422
    # Another organisation's cluster or model is "not found".
    foreign = await client.post(
        "/endpoints",
        json=_create_body(world, model, cluster, name="x"),
        headers=world["org_admin_b"].headers,
    )
    assert foreign.status_code == 404


async def test_a_model_that_failed_its_scan_is_not_deployed(
    app: FastAPI, client: httpx.AsyncClient, world: World, model: dict[str, Any], cluster: str
) -> None:
    from sqlalchemy import update  # noqa: PLC0415

    from budapp.catalog.models import Model, ScanStatus  # noqa: PLC0415

    headers = world["project_admin"].headers
    created = await client.post(
        "/endpoints", json=_create_body(world, model, cluster), headers=headers
    )
    async with components(app).session_factory() as session:
        await session.execute(
            update(Model)
            .where(Model.id == uuid.UUID(model["id"]))
            .values(scan_status=ScanStatus.FAILED)
        )
        await session.commit()
    response = await client.post(
        f"/endpoints/{created.json()['data']['id']}/deploy", headers=headers
    )
    assert response.status_code == 409
    assert "scan" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("actor", "expected"),
    [("user", 200), ("outsider", 404), ("user_b", 404), ("org_admin_b", 404), ("org_admin", 200)],
)
async def test_who_sees_an_endpoint(
    client: httpx.AsyncClient,
    world: World,
    model: dict[str, Any],
    cluster: str,
    actor: str,
    expected: int,
) -> None:
    created = await client.post(
        "/endpoints",
        json=_create_body(world, model, cluster),
        headers=world["project_admin"].headers,
    )
    endpoint_id = created.json()["data"]["id"]
    headers = world[actor].headers
    for path in ("", "/status"):
        assert (
            await client.get(f"/endpoints/{endpoint_id}{path}", headers=headers)
        ).status_code == expected
    if expected == 404:
        assert (
            await client.post(f"/endpoints/{endpoint_id}/deploy", headers=headers)
        ).status_code == 404
        assert (
            await client.delete(f"/endpoints/{endpoint_id}", headers=headers)
        ).status_code == 404
    assert (await client.get("/endpoints")).status_code == 401


async def test_a_replica_that_gives_up_puts_its_endpoint_in_error(
    app: FastAPI, client: httpx.AsyncClient, world: World, model: dict[str, Any], cluster: str
) -> None:
    from budapp.adapters.clusters.base import RuntimeState, RuntimeStatus  # noqa: PLC0415
    from budapp.endpoints.runtimes import RuntimeEvents  # noqa: PLC0415

    headers = world["user"].headers
    created = await client.post(
        "/endpoints", json=_create_body(world, model, cluster, replicas=1), headers=headers
    )
    endpoint_id = created.json()["data"]["id"]
    deployed = await client.post(f"/endpoints/{endpoint_id}/deploy", headers=headers)
    run = await wait_for_run(client, deployed.json()["data"]["workflow_id"], headers)
    assert run["status"] == "SUCCEEDED", run
    replica = (await client.get(f"/endpoints/{endpoint_id}/status", headers=headers)).json()[
        "data"
    ]["replicas"][0]

    # What the supervisor reports once a runtime crashed more often than its policy allows.
    await RuntimeEvents(components(app).session_factory)(
        RuntimeStatus(
            runtime_id=replica["runtime_id"],
            state=RuntimeState.FAILED,
            restarts=5,
            message="exited 6 times in 300s; last lines: Traceback ...",
        )
    )
    status = (await client.get(f"/endpoints/{endpoint_id}/status", headers=headers)).json()["data"]
    assert status["status"] == "ERROR"
    assert "replica 0 failed" in status["status_message"]
    assert status["replicas"][0]["state"] == "FAILED"
    inbox = (await client.get("/notifications", headers=headers)).json()["data"]
    assert any(item["kind"] == "endpoint.failed" for item in inbox)
    # From ERROR an endpoint may be undeployed (cleaning up) or deployed again.
    undeployed = await client.post(f"/endpoints/{endpoint_id}/undeploy", headers=headers)
    assert undeployed.status_code == 202
    run = await wait_for_run(client, undeployed.json()["data"]["workflow_id"], headers)
    assert run["status"] == "SUCCEEDED", run
