from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.clusters.factories import create_cluster
from tests.factories import World


async def wait_for_run(
    client: httpx.AsyncClient, run_id: str, headers: dict[str, str], seconds: float = 60.0
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        body: dict[str, Any] = (await client.get(f"/workflows/{run_id}", headers=headers)).json()[
            "data"
        ]
        if body["status"] in {"SUCCEEDED", "FAILED", "CANCELLED"}:
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.1)


async def onboarded_local_cluster(app: FastAPI, client: httpx.AsyncClient, world: World) -> str:
    cluster_id = await create_cluster(app, world.org_a, f"local-{uuid.uuid4().hex[:6]}")
    response = await client.post(
        f"/clusters/{cluster_id}/onboard", headers=world["org_admin"].headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "AVAILABLE"
    return str(cluster_id)


async def register_model(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> dict[str, Any]:
    body = {
        "name": f"tiny-{uuid.uuid4().hex[:6]}",
        "repo_id": "example/tiny-llama",
        "parameter_count": 1_100_000_000,
        "context_length": 2048,
        "quantization": "bf16",
        **fields,
    }
    response = await client.post("/models/local", json=body, headers=headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


@pytest.fixture
async def cluster(app: FastAPI, client: httpx.AsyncClient, world: World) -> str:
    return await onboarded_local_cluster(app, client, world)


@pytest.fixture
async def model(client: httpx.AsyncClient, world: World) -> dict[str, Any]:
    return await register_model(client, world["project_admin"].headers)
