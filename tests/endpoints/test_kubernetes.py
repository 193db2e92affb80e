"""The issue's story through budapp's API, against the Kubernetes API emulator: an org admin
stores a kubeconfig credential, registers a kubernetes cluster, sees its GPU nodes; a project
admin deploys an endpoint, watches the rollout in the workflow's steps, calls it through the
gateway, scales it and deletes it. And the faults as the workflow and the endpoint report
them: a kubeconfig that is another tenant's or not one, an image that does not exist, the API
server going away mid-deploy (whose leftovers reconciliation removes)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from budapp.core.components import RUNTIME_TEMPLATES, components
from budapp.endpoints.reconcile import CLUSTER_RECONCILER
from budapp.events.service import ORG_EVENTS_TOPIC
from tests.endpoints.conftest import register_model, wait_for_run
from tests.factories import World
from tests.fixtures.kube_apiserver import Grant, KubeApiServer, cpu_node, gpu_node, kube_apiserver
from tests.gateway.conftest import create_router, gateway_url, new_key, openai_client

__all__ = ["gateway_url"]
NAMESPACE = "models"


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[KubeApiServer]:
    async with kube_apiserver(tmp_path) as api:
        api.add_node(gpu_node("gpu-a", gpus=8))
        api.add_node(cpu_node("cpu-a"))
        yield api


async def kubeconfig_credential(
    client: httpx.AsyncClient, world: World, kube: KubeApiServer, *, grant: Grant | None = None
) -> str:
    body = {
        "name": f"kube-{uuid.uuid4().hex[:6]}",
        "spec": {"kind": "kubeconfig", "kubeconfig": kube.kubeconfig(kube.token(grant))},
    }
    created = await client.post("/credentials", json=body, headers=world["org_admin"].headers)
    assert created.status_code == 201, created.text
    credential_id: str = created.json()["data"]["id"]
    return credential_id


async def register(
    client: httpx.AsyncClient, world: World, credential_id: str, **settings: Any
) -> httpx.Response:
    body = {
        "name": f"k8s-{uuid.uuid4().hex[:6]}",
        "provider": "kubernetes",
        "kubernetes": {
            "credential_id": credential_id,
            "namespace": NAMESPACE,
            "service_type": "NodePort",
            "service_url": "http://127.0.0.1:{node_port}",
            **settings,
        },
    }
    return await client.post("/clusters", json=body, headers=world["org_admin"].headers)


async def onboarded(client: httpx.AsyncClient, world: World, kube: KubeApiServer) -> str:
    registered = await register(client, world, await kubeconfig_credential(client, world, kube))
    assert registered.status_code == 201, registered.text
    cluster_id: str = registered.json()["data"]["id"]
    onboard = await client.post(
        f"/clusters/{cluster_id}/onboard", headers=world["org_admin"].headers
    )
    assert onboard.status_code == 200, onboard.text
    return cluster_id


async def create_endpoint(
    client: httpx.AsyncClient, world: World, cluster_id: str, model: dict[str, Any]
) -> str:
    created = await client.post(
        "/endpoints",
        json={
            "project_id": str(world.project_a),
            "name": f"ep-{uuid.uuid4().hex[:6]}",
            "model_id": model["id"],
            "cluster_id": cluster_id,
            "runtime": "sim",
        },
        headers=world["project_admin"].headers,
    )
    assert created.status_code == 201, created.text
    endpoint_id: str = created.json()["data"]["id"]
    return endpoint_id


async def run_of(
    client: httpx.AsyncClient, world: World, response: httpx.Response
) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    return await wait_for_run(
        client, response.json()["data"]["workflow_id"], world["project_admin"].headers, 90
    )


async def test_register_deploy_call_scale_and_delete(
    app: FastAPI, client: httpx.AsyncClient, world: World, kube: KubeApiServer, gateway_url: str
) -> None:
    cluster_id = await onboarded(client, world, kube)
    cluster = (
        await client.get(f"/clusters/{cluster_id}", headers=world["org_admin"].headers)
    ).json()["data"]
    assert cluster["status"] == "AVAILABLE"
    assert cluster["kubernetes"]["namespace"] == NAMESPACE
    assert cluster["capacity"]["gpu_count"] == 8
    gpus = [d for n in cluster["nodes"] for d in n["devices"] if d["kind"] == "gpu"]
    assert gpus[0]["resource"] == "nvidia.com/gpu"
    assert "kubeconfig" not in json.dumps(cluster)

    steps: list[str] = []

    def hear(payload: dict[str, Any] | None) -> None:
        if payload is not None:
            steps.append(json.dumps(payload))

    components(app).event_bus.subscribe(ORG_EVENTS_TOPIC, hear)
    model = await register_model(client, world["project_admin"].headers)
    endpoint_id = await create_endpoint(client, world, cluster_id, model)
    admin = world["project_admin"].headers
    run = await run_of(
        client, world, await client.post(f"/endpoints/{endpoint_id}/deploy", headers=admin)
    )
    assert run["status"] == "SUCCEEDED", run
    heard = "\n".join(steps)
    for stage in ("created Deployment", "scheduled on node ", "pod ready", "the model answered"):
        assert stage in heard, stage
    assert kube.invalid == []
    endpoint = (await client.get(f"/endpoints/{endpoint_id}", headers=admin)).json()["data"]
    assert endpoint["status"] == "RUNNING"
    assert len(kube.names("deployments", NAMESPACE)) == 1

    router = await create_router(
        client,
        world,
        [{"kind": "endpoint", "endpoint_id": endpoint_id}],
        name=f"k8s-{uuid.uuid4().hex[:6]}",
    )
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as llm:
        answer = await llm.chat.completions.create(
            model=router["name"], messages=[{"role": "user", "content": "hello"}]
        )
    assert answer.model == model["name"]
    logs = await client.get(f"/endpoints/{endpoint_id}/logs", headers=admin)
    assert logs.status_code == 200, logs.text

    scaled = await run_of(
        client,
        world,
        await client.post(f"/endpoints/{endpoint_id}/scale", json={"replicas": 2}, headers=admin),
    )
    assert scaled["status"] == "SUCCEEDED", scaled
    assert len(kube.names("deployments", NAMESPACE)) == 2

    deleted = await run_of(
        client, world, await client.delete(f"/endpoints/{endpoint_id}", headers=admin)
    )
    assert deleted["status"] == "SUCCEEDED", deleted
    assert kube.names("deployments", NAMESPACE) == set()
    assert kube.names("services", NAMESPACE) == set()


async def test_a_cluster_takes_only_its_organizations_kubeconfig(
    client: httpx.AsyncClient, world: World, kube: KubeApiServer
) -> None:
    other = await client.post(
        "/credentials",
        json={"name": "openai", "spec": {"kind": "openai", "api_key": "sk-x"}},
        headers=world["org_admin"].headers,
    )
    assert other.status_code == 201, other.text
    refused = await register(client, world, other.json()["data"]["id"])
    assert refused.status_code == 422, refused.text
    assert "kubeconfig" in refused.json()["error"]["message"]
    unknown = await register(client, world, str(uuid.uuid4()))
    assert unknown.status_code == 404, unknown.text
    both = await client.post(
        "/clusters",
        json={"name": "x", "provider": "kubernetes", "kubernetes": {"namespace": NAMESPACE}},
        headers=world["org_admin"].headers,
    )
    assert both.status_code == 422
    in_cluster = await client.post(
        "/clusters",
        json={
            "name": "x",
            "provider": "kubernetes",
            "kubernetes": {"namespace": NAMESPACE, "in_cluster": True},
        },
        headers=world["org_admin"].headers,
    )
    assert in_cluster.status_code == 403


async def test_a_kubeconfig_in_use_cannot_be_deleted(
    client: httpx.AsyncClient, world: World, kube: KubeApiServer
) -> None:
    credential = await kubeconfig_credential(client, world, kube)
    cluster_id = (await register(client, world, credential)).json()["data"]["id"]
    headers = world["org_admin"].headers
    refused = await client.delete(f"/credentials/{credential}", headers=headers)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["details"] == [{"reference": "1 cluster(s)"}]
    assert (await client.delete(f"/clusters/{cluster_id}", headers=headers)).status_code == 204
    assert (await client.delete(f"/credentials/{credential}", headers=headers)).status_code == 204


async def test_a_namespace_without_permission_fails_onboarding_with_the_reason(
    client: httpx.AsyncClient, world: World, kube: KubeApiServer
) -> None:
    credential = await kubeconfig_credential(client, world, kube, grant=Grant(cluster_reads=False))
    cluster_id = (await register(client, world, credential)).json()["data"]["id"]
    onboard = await client.post(
        f"/clusters/{cluster_id}/onboard", headers=world["org_admin"].headers
    )
    assert onboard.status_code == 503, onboard.text
    assert "forbids it (403)" in onboard.json()["error"]["message"]
    cluster = (
        await client.get(f"/clusters/{cluster_id}", headers=world["org_admin"].headers)
    ).json()["data"]
    assert cluster["status"] == "ERROR"
    assert "nodes is forbidden" in cluster["last_error"]


async def test_an_image_that_does_not_exist_fails_the_deploy_and_leaves_nothing(
    app: FastAPI, client: httpx.AsyncClient, world: World, kube: KubeApiServer
) -> None:
    cluster_id = await onboarded(client, world, kube)
    kube.missing_images.add(components(app)[RUNTIME_TEMPLATES].get("sim").container.image)
    model = await register_model(client, world["project_admin"].headers)
    endpoint_id = await create_endpoint(client, world, cluster_id, model)
    admin = world["project_admin"].headers
    run = await run_of(
        client, world, await client.post(f"/endpoints/{endpoint_id}/deploy", headers=admin)
    )
    assert run["status"] == "FAILED"
    assert "cannot be pulled" in run["error"]
    endpoint = (await client.get(f"/endpoints/{endpoint_id}", headers=admin)).json()["data"]
    assert endpoint["status"] == "ERROR"
    assert "not found" in endpoint["status_message"]
    assert kube.names("deployments", NAMESPACE) == set()


async def test_the_api_server_lost_mid_deploy_fails_clearly_and_reconciliation_cleans_up(
    app: FastAPI, client: httpx.AsyncClient, world: World, kube: KubeApiServer
) -> None:
    cluster_id = await onboarded(client, world, kube)
    nodes = dict(kube.nodes)
    kube.nodes.clear()  # the pod stays Pending: the deploy is under way when the server goes
    model = await register_model(client, world["project_admin"].headers)
    endpoint_id = await create_endpoint(client, world, cluster_id, model)
    admin = world["project_admin"].headers
    deploying = await client.post(f"/endpoints/{endpoint_id}/deploy", headers=admin)
    while not kube.names("deployments", NAMESPACE):  # noqa: ASYNC110 - polls the emulator
        await asyncio.sleep(0.05)
    await kube.down()
    run = await run_of(client, world, deploying)
    assert run["status"] == "FAILED"
    assert "unreachable" in run["error"]
    endpoint = (await client.get(f"/endpoints/{endpoint_id}", headers=admin)).json()["data"]
    assert endpoint["status"] == "ERROR"
    assert "unreachable" in endpoint["status_message"]

    # The Deployment budapp could not delete is found and removed once the server is back.
    await kube.up()
    kube.nodes.update(nodes)
    assert kube.names("deployments", NAMESPACE) != set()
    drifts = await components(app)[CLUSTER_RECONCILER].reconcile()
    assert [(d.kind, d.repaired) for d in drifts if str(d.cluster_id) == cluster_id] == [
        ("orphan", True)
    ]
    assert kube.names("deployments", NAMESPACE) == set()


async def test_reconciliation_recreates_a_replica_deleted_behind_budapps_back(
    app: FastAPI, client: httpx.AsyncClient, world: World, kube: KubeApiServer
) -> None:
    cluster_id = await onboarded(client, world, kube)
    model = await register_model(client, world["project_admin"].headers)
    endpoint_id = await create_endpoint(client, world, cluster_id, model)
    admin = world["project_admin"].headers
    run = await run_of(
        client, world, await client.post(f"/endpoints/{endpoint_id}/deploy", headers=admin)
    )
    assert run["status"] == "SUCCEEDED", run
    (name,) = kube.names("deployments", NAMESPACE)
    await kube._delete(("deployments", NAMESPACE, name))  # an operator's kubectl delete
    drifts = await components(app)[CLUSTER_RECONCILER].reconcile()
    assert [(d.kind, d.repaired) for d in drifts if str(d.cluster_id) == cluster_id] == [
        ("missing", True)
    ]
    assert kube.names("deployments", NAMESPACE) == {name}
