"""`/internal/*`: sibling services with the shared service token; nobody else. And the
service token opens no user route."""

from __future__ import annotations

import httpx
import pytest

from tests.auth.sso.conftest import SERVICE_TOKEN
from tests.factories import World


@pytest.mark.parametrize("header", ["X-API-Token", "dapr-api-token"])
async def test_service_token_opens_internal_routes(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/internal/health", headers={header: SERVICE_TOKEN})
    assert response.status_code == 200
    assert response.json()["data"] == {"status": "ok", "authenticated_via": header.lower()}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Token": SERVICE_TOKEN[:-1]},
        {"X-API-Token": SERVICE_TOKEN + "x"},
        {"X-API-Token": ""},
        {"dapr-api-token": "wrong"},
        {"Authorization": f"Bearer {SERVICE_TOKEN}"},
    ],
)
async def test_anything_else_is_refused(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/internal/health", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("actor", ["user", "org_admin", "super_admin"])
async def test_user_tokens_do_not_open_internal_routes(
    client: httpx.AsyncClient, world: World, actor: str
) -> None:
    response = await client.get("/internal/health", headers=world[actor].headers)
    assert response.status_code == 401


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Token": SERVICE_TOKEN}, {"Authorization": f"Bearer {SERVICE_TOKEN}"}],
)
async def test_service_token_does_not_open_user_routes(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for path in ("/auth/me", "/projects", "/users"):
        assert (await client.get(path, headers=headers)).status_code == 401


async def test_introspection_tells_sibling_services_who_a_token_is(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = {"X-API-Token": SERVICE_TOKEN}
    active = await client.post(
        "/internal/auth/introspect", json={"token": world["user"].token}, headers=headers
    )
    assert active.status_code == 200
    body = active.json()["data"]
    assert body["active"] is True
    assert body["user_id"] == str(world["user"].id)
    assert body["organization_id"] == str(world.org_a)
    assert body["role"] == "user"
    inactive = await client.post(
        "/internal/auth/introspect", json={"token": "garbage"}, headers=headers
    )
    assert inactive.json()["data"] == {
        "active": False,
        "user_id": None,
        "organization_id": None,
        "email": None,
        "role": None,
    }
    # Without the service token, no introspection.
    refused = await client.post(
        "/internal/auth/introspect",
        json={"token": world["user"].token},
        headers=world["user"].headers,
    )
    assert refused.status_code == 401
