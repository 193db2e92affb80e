"""The /routers routes: validation of targets and names, credentials the project may use,
and a url target with a credential sending the provider's key (never the client's)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.credentials.samples import create_id
from tests.factories import World
from tests.gateway.conftest import create_router, new_key

URL = {"kind": "url", "base_url": "http://127.0.0.1:9/v1"}


def routers_of(world: World) -> str:
    return f"/projects/{world.project_a}/routers"


async def test_create_read_list_update_delete(client: httpx.AsyncClient, world: World) -> None:
    headers = world["project_admin"].headers
    created = await create_router(
        client, world, [URL, {**URL, "priority": 1, "weight": 2, "rpm": 10}], name="chat-main"
    )
    assert created["strategy"] == "weighted"
    assert created["fallback_on"] == ["5xx", "429", "timeout", "connect_error"]
    assert created["targets"][1]["rpm"] == 10
    one = await client.get(f"{routers_of(world)}/{created['id']}", headers=headers)
    assert one.json()["data"]["name"] == "chat-main"
    listed = await client.get(routers_of(world), params={"search": "main"}, headers=headers)
    assert [r["id"] for r in listed.json()["data"]] == [created["id"]]
    updated = await client.patch(
        f"{routers_of(world)}/{created['id']}",
        json={"strategy": "lowest_latency", "cooldown_seconds": 5},
        headers=headers,
    )
    assert updated.json()["data"]["strategy"] == "lowest_latency"
    assert updated.json()["data"]["cooldown_seconds"] == 5
    gone = await client.delete(f"{routers_of(world)}/{created['id']}", headers=headers)
    assert gone.status_code == 204
    again = await client.get(f"{routers_of(world)}/{created['id']}", headers=headers)
    assert again.status_code == 404
    # The name of a deleted router is free again.
    await create_router(client, world, [URL], name="chat-main")


async def test_duplicate_name_in_a_project_is_a_conflict(
    client: httpx.AsyncClient, world: World
) -> None:
    await create_router(client, world, [URL], name="same")
    response = await client.post(
        routers_of(world),
        json={"name": "same", "targets": [URL]},
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "targets": []},
        {"name": "x", "targets": [{"kind": "url"}]},
        {"name": "x", "targets": [{"kind": "url", "base_url": "not a url"}]},
        {"name": "x", "targets": [{"kind": "ftp", "base_url": "http://a"}]},
        {"name": "x", "targets": [{"kind": "endpoint", "endpoint_id": "nope"}]},
        {"name": "x", "targets": [{**URL, "weight": 0}]},
        {"name": "x", "targets": [{**URL, "timeout_seconds": -1}]},
        {"name": "x", "targets": [URL], "fallback_on": ["4xx"]},
        {"name": "x", "targets": [URL], "strategy": "fastest"},
        {"name": "x", "targets": [URL], "max_attempts": 0},
        {"name": "has space", "targets": [URL]},
        {"name": "x\u0000", "targets": [URL]},
        {"name": "x", "targets": [URL], "unknown": 1},
    ],
)
async def test_invalid_bodies_are_422(
    client: httpx.AsyncClient, world: World, body: dict[str, Any]
) -> None:
    response = await client.post(routers_of(world), json=body, headers=world["user"].headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_null_name_in_an_update_is_422(client: httpx.AsyncClient, world: World) -> None:
    created = await create_router(client, world, [URL])
    response = await client.patch(
        f"{routers_of(world)}/{created['id']}",
        json={"name": None},
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 422


async def test_a_viewer_cannot_manage_but_can_read(client: httpx.AsyncClient, world: World) -> None:
    # `outsider` joins project A as a viewer.
    response = await client.post(
        f"/projects/{world.project_a}/members",
        json={"user_id": str(world["outsider"].id), "role": "viewer"},
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 201, response.text
    created = await create_router(client, world, [URL])
    viewer = world["outsider"].headers
    assert (
        await client.get(f"{routers_of(world)}/{created['id']}", headers=viewer)
    ).status_code == 200
    refused = await client.post(
        routers_of(world), json={"name": "v", "targets": [URL]}, headers=viewer
    )
    assert refused.status_code == 403


async def test_credential_of_another_project_is_not_found(
    client: httpx.AsyncClient, world: World
) -> None:
    admin = world["org_admin"].headers
    other_project = await client.post("/projects", json={"name": "other"}, headers=admin)
    assert other_project.status_code == 201, other_project.text
    credential = await create_id(
        client,
        admin,
        {"kind": "openai", "api_key": "sk-elsewhere-0123456789"},
        project_id=other_project.json()["data"]["id"],
    )
    response = await client.post(
        routers_of(world),
        json={"name": "x", "targets": [{**URL, "credential_id": str(credential)}]},
        headers=admin,
    )
    assert response.status_code == 404


async def test_rate_limits_are_read_set_and_cleared(
    client: httpx.AsyncClient, world: World
) -> None:
    path = f"/projects/{world.project_a}/rate-limits"
    headers = world["project_admin"].headers
    empty = await client.get(path, headers=headers)
    assert empty.json()["data"]["rpm"] is None
    set_ = await client.put(path, json={"rpm": 100, "key_tpm": 5000}, headers=headers)
    assert set_.json()["data"]["rpm"] == 100
    assert set_.json()["data"]["key_tpm"] == 5000
    cleared = await client.put(path, json={"key_tpm": 10}, headers=headers)
    assert cleared.json()["data"]["rpm"] is None
    refused = await client.put(path, json={"rpm": 0}, headers=headers)
    assert refused.status_code == 422


@pytest.fixture
def recording_backend() -> Iterator[tuple[str, list[bytes]]]:
    """Answers one OpenAI-shaped completion and records the request."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    heads: list[bytes] = []
    usage = b'{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}'
    body = b'{"id":"x","object":"chat.completion","choices":[],"usage":' + usage + b"}"

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            received = connection.recv(65536)
            head, _, rest = received.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(rest) < length:
                rest += connection.recv(65536)
            heads.append(head + b"\r\n\r\n" + rest)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\nconnection: close\r\n\r\n"
                + body
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/v1", heads
    thread.join(5)
    server.close()


async def test_a_credential_target_sends_the_providers_key_not_the_clients(
    client: httpx.AsyncClient,
    world: World,
    gateway_url: str,
    recording_backend: tuple[str, list[bytes]],
) -> None:
    base_url, heads = recording_backend
    credential = await create_id(
        client, world["org_admin"].headers, {"kind": "openai", "api_key": "sk-provider-0123456789"}
    )
    router = await create_router(
        client,
        world,
        [{"kind": "url", "base_url": base_url, "model": "gpt-x", "credential_id": str(credential)}],
        by="org_admin",
    )
    key = await new_key(client, world)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": router["name"], "messages": []},
            headers={"Authorization": f"Bearer {key['key']}"},
        )
    assert response.status_code == 200, response.text
    (head,) = heads
    assert b"authorization: Bearer sk-provider-0123456789" in head
    assert key["key"].encode() not in head
    assert b'"model":"gpt-x"' in head


async def test_a_project_with_routers_cannot_be_deleted(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await create_router(client, world, [URL])
    project = f"/projects/{world.project_a}"
    headers = world["project_admin"].headers
    refused = await client.delete(project, headers=headers)
    assert refused.status_code == 409
    assert "router" in refused.json()["error"]["message"]
    await client.delete(f"{routers_of(world)}/{created['id']}", headers=headers)
    assert (await client.delete(project, headers=headers)).status_code == 204
