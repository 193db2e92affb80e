"""`budapp gateway`: the gateway alone, on the same database, with /v1, /metrics and /health."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from budapp.core.components import components
from budapp.gateway.proxy import GATEWAY
from budapp.main import create_gateway_app
from budapp.settings import Settings
from tests.factories import World
from tests.gateway.conftest import create_router, new_key, url_target
from tests.sim.conftest import RunningSim


async def test_the_gateway_alone_serves_a_router_of_the_shared_database(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient, world: World, sim: RunningSim
) -> None:
    del app
    router = await create_router(client, world, [url_target(sim)])
    key = await new_key(client, world)
    alone = create_gateway_app(settings)
    async with (
        alone.router.lifespan_context(alone),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=alone), base_url="http://gateway.test"
        ) as http,
    ):
        headers = {"Authorization": f"Bearer {key['key']}"}
        assert (await http.get("/health")).json() == {"status": "ok"}
        models = await http.get("/v1/models", headers=headers)
        assert [m["id"] for m in models.json()["data"]] == [router["name"]]
        answer = await http.post(
            "/v1/embeddings", json={"model": router["name"], "input": "x"}, headers=headers
        )
        assert answer.status_code == 200
        assert "budapp_gateway_requests_total" in (await http.get("/metrics")).text
        # The management API is not there.
        assert (await http.get("/projects")).status_code == 404


async def test_a_body_over_the_limit_is_413_in_openai_shape(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    key = await new_key(client, world)
    gateway = components(app)[GATEWAY]
    limit, gateway.max_body_bytes = gateway.max_body_bytes, 1024
    try:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "x" * 2000}]},
            headers={"Authorization": f"Bearer {key['key']}"},
        )
    finally:
        gateway.max_body_bytes = limit
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


async def test_inside_budapp_serve_a_body_over_the_limit_is_413_in_openai_shape(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    # The management API's body-size middleware leaves /v1 to the gateway's own limit and
    # shape: an OpenAI client must be able to read the error.
    key = await new_key(client, world)
    limit = app.state.settings.gateway_max_request_bytes
    body = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * limit + b'"}]}'
    response = await client.post(
        "/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {key['key']}", "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert "bytes" in response.json()["error"]["message"]
