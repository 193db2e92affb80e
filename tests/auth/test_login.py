from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from budapp.auth.throttle import LOGIN_THROTTLE
from budapp.core.components import components
from budapp.core.origin import parse_networks
from budapp.core.roles import Role
from tests.factories import PASSWORD, World, create_account, create_organization, login


async def test_login_returns_token_pair(client: httpx.AsyncClient, world: World) -> None:
    response = await client.post(
        "/auth/login", json={"email": "user@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    tokens = response.json()["data"]
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_token"].startswith("bud_rt_")
    assert tokens["access_token"].count(".") == 2


async def test_login_email_is_case_insensitive(client: httpx.AsyncClient, world: World) -> None:
    response = await client.post(
        "/auth/login", json={"email": "USER@Example.com", "password": PASSWORD}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("email", "password"),
    [("user@example.com", "wrong-password"), ("nobody@example.com", PASSWORD)],
)
async def test_login_refuses_bad_credentials_with_one_message(
    client: httpx.AsyncClient, world: World, email: str, password: str
) -> None:
    response = await client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid e-mail or password"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_login_refuses_deactivated_user(client: httpx.AsyncClient, world: World) -> None:
    update = await client.put(
        f"/users/{world['user'].id}", json={"is_active": False}, headers=world["org_admin"].headers
    )
    assert update.status_code == 200
    response = await client.post(
        "/auth/login", json={"email": "user@example.com", "password": PASSWORD}
    )
    assert response.status_code == 401


async def test_login_locks_account_after_repeated_failures(
    client: httpx.AsyncClient, world: World, app: FastAPI
) -> None:
    limit = app.state.settings.login_max_failures_per_account
    for _ in range(limit):
        failed = await client.post(
            "/auth/login", json={"email": "user@example.com", "password": "nope-nope"}
        )
        assert failed.status_code == 401
    # Even the right password is refused while the account is locked.
    locked = await client.post(
        "/auth/login", json={"email": "user@example.com", "password": PASSWORD}
    )
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "RATE_LIMITED"
    assert int(locked.headers["retry-after"]) > 0
    # Another account is unaffected.
    other = await client.post(
        "/auth/login", json={"email": "outsider@example.com", "password": PASSWORD}
    )
    assert other.status_code == 200


async def test_successful_login_resets_failure_count(
    client: httpx.AsyncClient, world: World, app: FastAPI
) -> None:
    limit = app.state.settings.login_max_failures_per_account
    for _ in range(limit - 1):
        await client.post("/auth/login", json={"email": "user@example.com", "password": "nope!!!!"})
    assert (await login(client, world["user"])).token
    for _ in range(limit - 1):
        await client.post("/auth/login", json={"email": "user@example.com", "password": "nope!!!!"})
    again = await client.post(
        "/auth/login", json={"email": "user@example.com", "password": PASSWORD}
    )
    assert again.status_code == 200


async def test_login_limits_attempts_per_client_address(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    organization = await create_organization(app, "Throttled")
    limit = app.state.settings.login_max_attempts_per_address
    emails = [f"spray{i}@example.com" for i in range(limit + 1)]
    for email in emails[:limit]:
        response = await client.post("/auth/login", json={"email": email, "password": "guess-123"})
        assert response.status_code == 401
    account = await create_account(app, organization, emails[limit], Role.USER)
    blocked = await client.post("/auth/login", json={"email": account.email, "password": PASSWORD})
    assert blocked.status_code == 429
    assert "address" in blocked.json()["error"]["message"]


async def test_login_trusts_forwarded_for_only_from_trusted_proxies(
    client: httpx.AsyncClient, world: World, app: FastAPI
) -> None:
    limit = app.state.settings.login_max_attempts_per_address
    # An untrusted peer cannot dodge the per-address limit by inventing X-Forwarded-For.
    for i in range(limit):
        await client.post(
            "/auth/login",
            json={"email": "x@example.com", "password": "guess-123"},
            headers={"X-Forwarded-For": f"10.0.0.{i}"},
        )
    response = await client.post(
        "/auth/login",
        json={"email": "user@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "10.9.9.9"},
    )
    assert response.status_code == 429


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "user@example.com"},
        {"email": "not-an-email", "password": "x"},
        {"email": "user@example.com", "password": ""},
        {"email": "user@example.com", "password": "x" * 1025},
        {"email": "user@example.com", "password": PASSWORD, "remember": True},
    ],
)
async def test_login_rejects_malformed_bodies(
    client: httpx.AsyncClient, world: World, body: dict[str, object]
) -> None:
    response = await client.post("/auth/login", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_login_records_last_login(client: httpx.AsyncClient, world: World) -> None:
    me = await client.get(f"/users/{world['user'].id}", headers=world["user"].headers)
    assert me.json()["data"]["last_login_at"] is not None


async def test_login_honours_forwarded_for_from_a_trusted_proxy_range(
    client: httpx.AsyncClient, world: World, app: FastAPI
) -> None:
    settings = app.state.settings
    components(app).trusted_networks = parse_networks(["127.0.0.0/8"])
    # httpx's ASGI transport presents the peer as 127.0.0.1.
    try:
        limit = settings.login_max_attempts_per_address
        for _ in range(limit):
            await client.post(
                "/auth/login",
                json={"email": "x@example.com", "password": "guess-123"},
                headers={"X-Forwarded-For": "203.0.113.7"},
            )
        blocked = await client.post(
            "/auth/login",
            json={"email": "user@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
        other_client = await client.post(
            "/auth/login",
            json={"email": "user@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.8"},
        )
    finally:
        components(app).trusted_networks = []
    assert blocked.status_code == 429
    assert other_client.status_code == 200


async def test_login_is_503_when_the_cache_is_down(
    client: httpx.AsyncClient, world: World, app: FastAPI
) -> None:
    from budapp.adapters.cache.redis import RedisWindowCounter  # noqa: PLC0415

    throttle = components(app)[LOGIN_THROTTLE]
    healthy = throttle.counter
    throttle.counter = RedisWindowCounter.from_url("redis://127.0.0.1:1/0")
    try:
        response = await client.post(
            "/auth/login", json={"email": "user@example.com", "password": PASSWORD}
        )
    finally:
        await throttle.counter.close()
        throttle.counter = healthy
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
