"""Bad input and bad backends: every error is in OpenAI's shape, with a clear status."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from tests.api_keys.test_routes import create_key, revoke_key
from tests.factories import World
from tests.gateway.conftest import (
    canned_backend,
    create_router,
    new_key,
    openai_client,
    url_target,
)
from tests.sim.conftest import RunningSim

MESSAGES = [{"role": "user", "content": "hi"}]


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code


@pytest.fixture
async def http(gateway_url: str) -> Any:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        yield client


async def test_missing_and_unknown_keys_are_401(
    client: httpx.AsyncClient, world: World, http: httpx.AsyncClient, gateway_url: str
) -> None:
    body = {"model": "x", "messages": MESSAGES}
    assert_openai_error(await http.post("/v1/chat/completions", json=body), 401, "invalid_api_key")
    bogus = {"Authorization": "Bearer bud_sk_" + "x" * 43}
    assert_openai_error(await http.post("/v1/chat/completions", json=body, headers=bogus), 401)
    basic = {"Authorization": "Basic abc"}
    assert_openai_error(await http.get("/v1/models", headers=basic), 401)
    async with openai_client(gateway_url, "not-a-key") as ai:
        with pytest.raises(openai.AuthenticationError):
            await ai.models.list()


async def test_a_revoked_key_is_refused_at_once(
    client: httpx.AsyncClient, world: World, http: httpx.AsyncClient, sim: RunningSim
) -> None:
    router = await create_router(client, world, [url_target(sim)])
    key = await new_key(client, world)
    headers = {"Authorization": f"Bearer {key['key']}"}
    body = {"model": router["name"], "messages": MESSAGES}
    assert (await http.post("/v1/chat/completions", json=body, headers=headers)).status_code == 200
    await revoke_key(client, world, key["id"])
    await asyncio.sleep(0.05)
    assert_openai_error(await http.post("/v1/chat/completions", json=body, headers=headers), 401)


async def test_unknown_model_is_404_model_not_found(
    client: httpx.AsyncClient, world: World, gateway_url: str
) -> None:
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        with pytest.raises(openai.NotFoundError) as caught:
            await ai.chat.completions.create(model="nope", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.code == "model_not_found"


async def test_a_key_of_another_project_cannot_use_this_projects_router(
    client: httpx.AsyncClient, world: World, http: httpx.AsyncClient, sim: RunningSim
) -> None:
    router = await create_router(client, world, [url_target(sim)])
    other = await create_key(client, world, by="org_admin_b", project=world.project_b)
    response = await http.post(
        "/v1/chat/completions",
        json={"model": router["name"], "messages": MESSAGES},
        headers={"Authorization": f"Bearer {other['key']}"},
    )
    assert_openai_error(response, 404, "model_not_found")


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"messages": []}', "model"),
        (b'{"model": 5}', "model"),
        (b'{"model": "m", "stream": "yes"}', "stream"),
    ],
)
async def test_malformed_bodies_are_400(
    client: httpx.AsyncClient,
    world: World,
    http: httpx.AsyncClient,
    content: bytes,
    param: str | None,
) -> None:
    key = await new_key(client, world)
    response = await http.post(
        "/v1/chat/completions",
        content=content,
        headers={"Authorization": f"Bearer {key['key']}", "content-type": "application/json"},
    )
    assert_openai_error(response, 400)
    assert response.json()["error"]["param"] == param


async def test_unknown_routes_and_methods_answer_in_openai_shape(http: httpx.AsyncClient) -> None:
    assert_openai_error(await http.get("/v1/nothing-here"), 404, "not_found")
    assert_openai_error(await http.get("/v1/chat/completions"), 405, "method_not_allowed")


async def test_backend_client_errors_are_passed_on(
    client: httpx.AsyncClient, world: World, http: httpx.AsyncClient, sim: RunningSim
) -> None:
    router = await create_router(client, world, [url_target(sim)])
    key = await new_key(client, world)
    response = await http.post(
        "/v1/chat/completions",
        json={"model": router["name"], "messages": MESSAGES, "n": 100000},
        headers={"Authorization": f"Bearer {key['key']}"},
    )
    assert 400 <= response.status_code < 500
    assert_openai_error(response, response.status_code)


@pytest.fixture
def garbage_backend() -> Iterator[str]:
    """A server that answers every request with 200 and bytes that are not JSON."""
    with canned_backend(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-length: 9\r\nconnection: close\r\n\r\n<garbage>"
    ) as base_url:
        yield base_url + "/v1"


async def test_a_backend_answering_garbage_is_502_and_falls_back(
    client: httpx.AsyncClient,
    world: World,
    http: httpx.AsyncClient,
    garbage_backend: str,
    sim: RunningSim,
) -> None:
    garbage = {"kind": "url", "base_url": garbage_backend}
    alone = await create_router(client, world, [garbage])
    backed = await create_router(client, world, [garbage, url_target(sim, priority=1)])
    key = await new_key(client, world)
    headers = {"Authorization": f"Bearer {key['key']}"}
    response = await http.post(
        "/v1/chat/completions", json={"model": alone["name"], "messages": MESSAGES}, headers=headers
    )
    assert_openai_error(response, 502, "upstream_error")
    response = await http.post(
        "/v1/chat/completions",
        json={"model": backed["name"], "messages": MESSAGES},
        headers=headers,
    )
    assert response.status_code == 200


async def test_router_edits_reach_the_gateway_without_waiting_for_the_ttl(
    app: FastAPI, client: httpx.AsyncClient, world: World, http: httpx.AsyncClient, sim: RunningSim
) -> None:
    router = await create_router(client, world, [url_target(sim, model="before")])
    key = await new_key(client, world)
    headers = {"Authorization": f"Bearer {key['key']}"}
    body = {"model": router["name"], "messages": MESSAGES}
    first = await http.post("/v1/chat/completions", json=body, headers=headers)
    assert first.json()["model"] == "before"
    edited = await client.patch(
        f"/projects/{world.project_a}/routers/{router['id']}",
        json={"targets": [url_target(sim, model="after")]},
        headers=world["project_admin"].headers,
    )
    assert edited.status_code == 200, edited.text
    await asyncio.sleep(0.05)
    second = await http.post("/v1/chat/completions", json=body, headers=headers)
    assert second.json()["model"] == "after"
    deleted = await client.delete(
        f"/projects/{world.project_a}/routers/{router['id']}",
        headers=world["project_admin"].headers,
    )
    assert deleted.status_code == 204
    await asyncio.sleep(0.05)
    assert_openai_error(await http.post("/v1/chat/completions", json=body, headers=headers), 404)
