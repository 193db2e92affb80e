"""A deployed endpoint called through the gateway: a router with an endpoint target reaches
the endpoint's running replicas (addresses learnt from endpoint.status events, no database
read per call), with the name the replicas serve; undeployed, the target is unavailable."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from budapp.core.components import components
from budapp.gateway.targets import TARGET_RESOLVER
from tests.endpoints.conftest import wait_for_run
from tests.factories import World
from tests.gateway.conftest import create_router, gateway_url, new_key, openai_client

__all__ = ["gateway_url"]


async def _deployed(
    client: httpx.AsyncClient, world: World, model: dict[str, Any], cluster: str
) -> str:
    headers = world["project_admin"].headers
    created = await client.post(
        "/endpoints",
        json={
            "project_id": str(world.project_a),
            "name": "served",
            "model_id": model["id"],
            "cluster_id": cluster,
            "runtime": "sim",
            "replicas": 2,
        },
        headers=headers,
    )
    endpoint_id: str = created.json()["data"]["id"]
    deployed = await client.post(f"/endpoints/{endpoint_id}/deploy", headers=headers)
    run = await wait_for_run(client, deployed.json()["data"]["workflow_id"], headers)
    assert run["status"] == "SUCCEEDED", run
    return endpoint_id


async def test_a_router_reaches_the_endpoint_replicas(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    model: dict[str, Any],
    cluster: str,
    gateway_url: str,
) -> None:
    endpoint_id = await _deployed(client, world, model, cluster)
    router = await create_router(
        client, world, [{"kind": "endpoint", "endpoint_id": endpoint_id}], name="team-chat"
    )
    assert router["name"] == "team-chat"
    assert len(components(app)[TARGET_RESOLVER].replicas(endpoint_id_uuid(endpoint_id))) == 2
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as llm:
        answer = await llm.chat.completions.create(
            model="team-chat", messages=[{"role": "user", "content": "hello"}]
        )
        assert answer.choices[0].message.content
        # The replicas serve the registry's model name; the gateway sent that, not the router's.
        assert answer.model == model["name"]

    undeployed = await client.post(
        f"/endpoints/{endpoint_id}/undeploy", headers=world["project_admin"].headers
    )
    run = await wait_for_run(
        client, undeployed.json()["data"]["workflow_id"], world["project_admin"].headers
    )
    assert run["status"] == "SUCCEEDED"
    assert components(app)[TARGET_RESOLVER].replicas(endpoint_id_uuid(endpoint_id)) == []
    async with openai_client(gateway_url, key["key"]) as llm:
        with pytest.raises(openai.APIStatusError) as refused:
            await llm.chat.completions.create(
                model="team-chat", messages=[{"role": "user", "content": "hello"}]
            )
    assert refused.value.status_code == 503


def endpoint_id_uuid(value: str) -> Any:
    import uuid  # noqa: PLC0415

    return uuid.UUID(value)
