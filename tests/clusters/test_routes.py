"""The clusters API: registering local and budcluster clusters, onboarding and syncing them
against the host and a loopback budcluster service, tokens never returned, soft delete and its
reference guard, and the local cluster registered at first start."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from budapp.adapters.clusters import RuntimeSpec, RuntimeState
from budapp.clusters.models import Cluster
from budapp.clusters.schemas import ClusterCreate
from budapp.clusters.service import ClusterService, ensure_local_cluster
from budapp.core.auth import system_scope
from budapp.core.components import CLUSTER_CONNECTOR, components
from budapp.credentials.service import VAULT
from budapp.organizations.service import OrganizationService
from budapp.settings import Settings
from tests.clusters.factories import create_cluster
from tests.factories import World, create_organization
from tests.fixtures.budcluster_server import SAMPLE_INVENTORY, ClusterState, serve


def budcluster_body(url: str, **connection: Any) -> dict[str, Any]:
    return {
        "name": f"remote {uuid.uuid4().hex[:6]}",
        "provider": "budcluster",
        "connection": {"base_url": url, **connection},
    }


async def stored(app: FastAPI, cluster_id: str) -> Cluster:
    async with components(app).session_factory() as session:
        cluster = await session.get(Cluster, uuid.UUID(cluster_id))
        assert cluster is not None
        return cluster


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_register_onboard_sync_a_budcluster_through_dapr(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    state = ClusterState(
        token="cluster-token-123",
        dapr_app_id="budcluster",
        dapr_api_token="dapr-token-456",
        inventory=SAMPLE_INVENTORY,
    )
    with serve(state) as url:
        body = budcluster_body(
            url,
            dapr_app_id="budcluster",
            token="cluster-token-123",
            dapr_api_token="dapr-token-456",
        )
        created = await client.post("/clusters", json=body, headers=headers)
        assert created.status_code == 201, created.text
        cluster = created.json()["data"]
        assert cluster["status"] == "ONBOARDING"
        assert cluster["organization_id"] == str(world.org_a)
        assert cluster["connection"] == {
            "base_url": url,
            "dapr_app_id": "budcluster",
            "token_set": True,
            "dapr_api_token_set": True,
        }
        assert "cluster-token-123" not in created.text
        assert "dapr-token-456" not in created.text
        row = await stored(app, cluster["id"])
        assert row.ciphertext is not None
        assert "cluster-token-123" not in row.ciphertext

        onboarded = await client.post(f"/clusters/{cluster['id']}/onboard", headers=headers)
        assert onboarded.status_code == 200, onboarded.text
        data = onboarded.json()["data"]
        assert data["status"] == "AVAILABLE"
        assert data["capacity"] == {
            "node_count": 2,
            "cpu_cores": 96,
            "memory_total_bytes": 640 * 2**30,
            "memory_free_bytes": 500 * 2**30,
            "gpu_count": 8,
            "gpu_memory_total_bytes": 640 * 2**30,
            "gpu_memory_free_bytes": 560 * 2**30,
        }
        assert data["nodes"][0]["devices"][1]["name"] == "NVIDIA H100 80GB HBM3"
        assert data["last_synced_at"] is not None
        assert state.requests[-1][1] == "/v1.0/invoke/budcluster/method/inventory"

        state.inventory = {"nodes": [SAMPLE_INVENTORY["nodes"][1]]}
        synced = await client.post(f"/clusters/{cluster['id']}/sync", headers=headers)
        assert synced.json()["data"]["capacity"]["gpu_count"] == 0

    # The service is gone now: the cluster is NOT_AVAILABLE, and says why.
    failed = await client.post(f"/clusters/{cluster['id']}/sync", headers=headers)
    assert failed.status_code == 503
    assert failed.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    status = await client.get(f"/clusters/{cluster['id']}/status", headers=headers)
    assert status.status_code == 200
    assert status.json()["data"]["status"] == "NOT_AVAILABLE"
    assert "unreachable" in status.json()["data"]["last_error"]
    assert status.json()["data"]["capacity"]["cpu_cores"] == 32  # the last known inventory


async def test_onboarding_an_unreachable_cluster_records_error(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    body = budcluster_body(f"http://127.0.0.1:{free_port()}")
    cluster = (await client.post("/clusters", json=body, headers=headers)).json()["data"]
    response = await client.post(f"/clusters/{cluster['id']}/onboard", headers=headers)
    assert response.status_code == 503
    assert "unreachable" in response.json()["error"]["message"]
    read = (await client.get(f"/clusters/{cluster['id']}", headers=headers)).json()["data"]
    assert read["status"] == "ERROR"
    assert read["connection"]["token_set"] is False


async def test_a_refused_token_is_an_error_that_does_not_echo_it(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    with serve(ClusterState(token="right", inventory=SAMPLE_INVENTORY)) as url:
        body = budcluster_body(url, token="wrong-secret-token")
        cluster = (await client.post("/clusters", json=body, headers=headers)).json()["data"]
        response = await client.post(f"/clusters/{cluster['id']}/onboard", headers=headers)
    assert response.status_code == 503
    assert "refused the credentials" in response.text
    assert "wrong-secret-token" not in response.text


async def test_the_local_host_onboards_with_its_own_inventory(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = world["super_admin"].headers
    body = {"name": "this host", "provider": "local"}
    forbidden = await client.post("/clusters", json=body, headers=world["org_admin"].headers)
    assert forbidden.status_code == 403
    created = await client.post("/clusters", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["data"]["connection"] is None
    cluster_id = created.json()["data"]["id"]
    onboarded = (await client.post(f"/clusters/{cluster_id}/onboard", headers=headers)).json()
    assert onboarded["data"]["status"] == "AVAILABLE"
    assert onboarded["data"]["capacity"]["cpu_cores"] >= 1
    assert onboarded["data"]["nodes"][0]["devices"][0]["kind"] == "cpu"
    again = await client.post("/clusters", json={**body, "name": "twice"}, headers=headers)
    assert again.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "provider": "budcluster"},
        {"name": "x", "provider": "local", "connection": {"base_url": "http://a"}},
        {"name": "x", "provider": "k8s"},
        {"name": "x", "provider": "budcluster", "connection": {"base_url": "not a url"}},
        {"name": "x", "provider": "budcluster", "connection": {"base_url": "http://a", "x": 1}},
        {"name": "x\x00", "provider": "local"},
        {"name": "", "provider": "local"},
        {
            "name": "x",
            "provider": "budcluster",
            "connection": {"base_url": "http://a", "dapr_app_id": "../evil"},
        },
    ],
)
async def test_bad_registrations_are_refused_without_a_row(
    app: FastAPI, client: httpx.AsyncClient, world: World, body: dict[str, Any]
) -> None:
    response = await client.post("/clusters", json=body, headers=world["super_admin"].headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    async with components(app).session_factory() as session:
        assert (await session.scalars(select(Cluster))).all() == []


async def test_names_are_unique_per_organization_until_deleted(
    client: httpx.AsyncClient, world: World
) -> None:
    body = budcluster_body("http://127.0.0.1:9")
    first = await client.post("/clusters", json=body, headers=world["org_admin"].headers)
    duplicate = await client.post("/clusters", json=body, headers=world["org_admin"].headers)
    assert duplicate.status_code == 409
    elsewhere = await client.post("/clusters", json=body, headers=world["org_admin_b"].headers)
    assert elsewhere.status_code == 201
    cluster_id = first.json()["data"]["id"]
    deleted = await client.delete(f"/clusters/{cluster_id}", headers=world["org_admin"].headers)
    assert deleted.status_code == 204
    assert (
        await client.get(f"/clusters/{cluster_id}", headers=world["user"].headers)
    ).status_code == 404
    again = await client.post("/clusters", json=body, headers=world["org_admin"].headers)
    assert again.status_code == 201


async def test_delete_erases_the_tokens(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    body = budcluster_body("http://127.0.0.1:9", token="t0ken-to-forget")
    created = await client.post("/clusters", json=body, headers=world["org_admin"].headers)
    cluster_id = created.json()["data"]["id"]
    await client.delete(f"/clusters/{cluster_id}", headers=world["org_admin"].headers)
    row = await stored(app, cluster_id)
    assert row.deleted_at is not None
    assert row.ciphertext is None


async def test_a_referenced_cluster_cannot_be_deleted(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    cluster_id = await create_cluster(app, world.org_a, "busy")

    async def running_endpoints(session: object, target: uuid.UUID) -> str | None:
        return "2 endpoint(s)" if target == cluster_id else None

    components(app).references.register("cluster", running_endpoints)
    try:
        response = await client.delete(
            f"/clusters/{cluster_id}", headers=world["org_admin"].headers
        )
    finally:
        components(app).references._checks["cluster"].remove(running_endpoints)
    assert response.status_code == 409
    assert response.json()["error"]["details"] == [{"reference": "2 endpoint(s)"}]


async def test_an_organization_with_clusters_cannot_be_deleted(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    organization = await create_organization(app, "Has clusters")
    await create_cluster(app, organization, "c")
    response = await client.delete(
        f"/organizations/{organization}", headers=world["super_admin"].headers
    )
    assert response.status_code == 409
    assert "1 cluster(s)" in response.text


async def test_list_filters_and_pages(
    client: httpx.AsyncClient, world: World, app: FastAPI
) -> None:
    for name in ("alpha", "beta", "gamma"):
        await create_cluster(app, world.org_a, name, provider="budcluster")
    await create_cluster(app, world.org_a, "this host", provider="local")
    await create_cluster(app, world.org_b, "alpha b", provider="budcluster")
    headers = world["user"].headers

    async def names(query: str, who: dict[str, str] = headers) -> list[str]:
        response = await client.get(f"/clusters?{query}", headers=who)
        assert response.status_code == 200, response.text
        return [item["name"] for item in response.json()["data"]]

    assert await names("") == ["alpha", "beta", "gamma", "this host"]
    assert await names("provider=local") == ["this host"]
    assert await names("name=ALP") == ["alpha"]
    assert await names("status=AVAILABLE") == []
    assert await names("status=ONBOARDING&per_page=2&page=2") == ["gamma", "this host"]
    assert await names("name=alpha", world["super_admin"].headers) == ["alpha", "alpha b"]
    assert await names(f"organization_id={world.org_b}", world["super_admin"].headers) == [
        "alpha b"
    ]
    page = await client.get("/clusters?per_page=2", headers=headers)
    assert page.json()["meta"] == {"total": 4, "page": 1, "per_page": 2}
    bad = await client.get("/clusters?status=BROKEN", headers=headers)
    assert bad.status_code == 422


async def test_org_admin_cannot_register_in_another_organization(
    client: httpx.AsyncClient, world: World
) -> None:
    body = {**budcluster_body("http://127.0.0.1:9"), "organization_id": str(world.org_b)}
    response = await client.post("/clusters", json=body, headers=world["org_admin"].headers)
    assert response.status_code == 404
    by_super = await client.post("/clusters", json=body, headers=world["super_admin"].headers)
    assert by_super.status_code == 201
    assert by_super.json()["data"]["organization_id"] == str(world.org_b)


# --- the local cluster at first start ------------------------------------------------------------


async def _ensure_local(app: FastAPI, organization: str = "Default") -> bool:
    state = components(app)
    return await ensure_local_cluster(
        state.session_factory,
        organization_name=organization,
        cluster_name="local",
        keyring=state.keyring,
        connector=state[CLUSTER_CONNECTOR],
        references=state.references,
    )


async def test_the_local_cluster_is_registered_once_in_the_default_organization(
    app: FastAPI,
) -> None:
    assert await _ensure_local(app) is False  # no default organization: nothing to do
    organization = await create_organization(app, "Default")
    assert await _ensure_local(app) is True
    assert await _ensure_local(app) is False
    async with components(app).session_factory() as session:
        clusters = (await session.scalars(select(Cluster))).all()
        assert [(c.name, c.provider.value, c.status.value) for c in clusters] == [
            ("local", "local", "AVAILABLE")
        ]
        assert clusters[0].organization_id == organization
        assert clusters[0].cpu_cores >= 1
        # Deleted by an operator, it stays deleted.
        clusters[0].deleted_at = clusters[0].created_at
        await session.commit()
    assert await _ensure_local(app) is False


def test_local_cluster_registration_defaults_to_the_embedded_database() -> None:
    assert Settings(database_url="").should_register_local_cluster
    assert not Settings(database_url="postgresql+asyncpg://x/y").should_register_local_cluster
    assert not Settings(
        database_url="", local_cluster_auto_register=False
    ).should_register_local_cluster
    with pytest.raises(ValueError, match="runtime_port_min"):
        Settings(runtime_port_min=30000, runtime_port_max=20000)


# --- the API the endpoints domain uses -----------------------------------------------------------


async def test_provider_for_gives_the_endpoints_domain_a_working_provider(
    app: FastAPI, world: World
) -> None:
    state = ClusterState(token="tok", inventory=SAMPLE_INVENTORY)
    with serve(state) as url:
        async with components(app).session_factory() as session:
            service = ClusterService(
                session,
                components(app)[VAULT].keyring,
                components(app)[CLUSTER_CONNECTOR],
                OrganizationService(session, components(app).references),
                components(app).references,
            )
            created = await service.create_in(
                world.org_a,
                ClusterCreate.model_validate(
                    {
                        "name": "remote",
                        "provider": "budcluster",
                        "connection": {"base_url": url, "token": "tok"},
                    }
                ),
            )
            provider = await service.provider_for(system_scope(), created.id)
            status = await provider.deploy_runtime(
                RuntimeSpec(runtime_id="e-0", template="sim", model_name="m")
            )
    assert status.state is RuntimeState.RUNNING
    assert state.requests[-1][2]["authorization"] == "Bearer tok"
