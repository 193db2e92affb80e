"""The browser login through a real provider: authorization code + PKCE + state + nonce,
then budapp's own session tokens; and every way the callback can be abused."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from budapp.core.components import components
from budapp.core.roles import Role
from tests.auth.sso.conftest import ACME_ORG, REDIRECT_TARGET
from tests.auth.sso.helpers import audit_details, path_and_query, query_of, start_login
from tests.auth.sso.provider import TestProvider
from tests.factories import World, create_account, create_organization

ALICE = {
    "email": "alice@acme.example",
    "email_verified": True,
    "name": "Alice Acme",
    "realm_access": {"roles": ["offline_access", "user"]},
    "resource_access": {"budapp": {"roles": ["project-admin"]}},
}


@pytest.fixture
async def acme_org(app: FastAPI) -> uuid.UUID:
    return await create_organization(app, ACME_ORG)


async def _login(
    client: httpx.AsyncClient, provider: TestProvider, sub: str, **params: str
) -> httpx.Response:
    authorization_url = await start_login(client, provider="acme", **params)
    callback = provider.authorize(authorization_url, sub)
    return await client.get(path_and_query(callback))


async def test_full_login_provisions_the_user_in_the_provider_organisation(
    client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID
) -> None:
    acme.set_user("alice", ALICE)
    authorization_url = await start_login(client, provider="acme")
    assert authorization_url.startswith(f"{acme.issuer}/oauth2/authorize")
    sent = query_of(authorization_url)
    assert sent["code_challenge_method"] == "S256"
    assert len(sent["code_challenge"]) == 43
    assert sent["redirect_uri"] == "http://budapp.test/auth/oauth/callback"
    assert sent["nonce"]
    assert sent["state"]
    assert sent["client_id"] == "budapp"
    assert set(sent["scope"].split()) == {"openid", "email", "profile"}

    callback = acme.authorize(authorization_url, "alice")
    response = await client.get(path_and_query(callback))
    assert response.status_code == 200, response.text
    tokens = response.json()["data"]
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    body = me.json()["data"]
    assert body["email"] == "alice@acme.example"
    assert body["name"] == "Alice Acme"
    # realm role "user" and client role "project-admin": the highest wins.
    assert body["role"] == "project_admin"
    assert body["organization"]["id"] == str(acme_org)

    # budapp's own refresh token works as after a password login.
    refreshed = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200


async def test_later_logins_update_email_name_and_role(
    client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID
) -> None:
    acme.set_user("bob", {**ALICE, "email": "bob@acme.example", "name": "Bob"})
    first = await _login(client, acme, "bob")
    user_id = (
        await client.get(
            "/auth/me", headers={"Authorization": f"Bearer {first.json()['data']['access_token']}"}
        )
    ).json()["data"]["id"]

    acme.set_user(
        "bob",
        {
            "email": "robert@acme.example",
            "email_verified": True,
            "name": "Robert",
            "realm_access": {"roles": ["org-admin"]},
        },
    )
    second = await _login(client, acme, "bob")
    me = await client.get(
        "/auth/me", headers={"Authorization": f"Bearer {second.json()['data']['access_token']}"}
    )
    body = me.json()["data"]
    assert body["id"] == user_id  # the same account, found by (issuer, subject)
    assert (body["email"], body["name"], body["role"]) == (
        "robert@acme.example",
        "Robert",
        "org_admin",
    )


async def test_redirect_target_gets_a_one_time_login_code(
    client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID
) -> None:
    acme.set_user("carol", {**ALICE, "email": "carol@acme.example"})
    response = await _login(client, acme, "carol", redirect_to=f"{REDIRECT_TARGET}/after-login")
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(f"{REDIRECT_TARGET}/after-login?login_code=")
    assert "access_token" not in location
    code = query_of(location)["login_code"]

    tokens = await client.post("/auth/oauth/token", json={"login_code": code})
    assert tokens.status_code == 200
    assert tokens.json()["data"]["access_token"]
    again = await client.post("/auth/oauth/token", json={"login_code": code})
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example.com/app",
        "https://console.example.com/application",  # a prefix of the path, not under it
        "https://console.example.com.evil.example/app",
        "http://console.example.com/app",  # another scheme
        "https://user@console.example.com/app",
        "javascript:alert(1)",
        "//evil.example.com",
        "https://console.example.com/app\\@evil.example.com",
    ],
)
async def test_only_configured_redirect_targets_are_accepted(
    client: httpx.AsyncClient, target: str
) -> None:
    response = await client.get(
        "/auth/oauth/login", params={"provider": "acme", "redirect_to": target}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_replayed_callback_is_refused_and_audited(
    app: FastAPI, client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID
) -> None:
    acme.set_user("dave", {**ALICE, "email": "dave@acme.example"})
    authorization_url = await start_login(client, provider="acme")
    callback = path_and_query(acme.authorize(authorization_url, "dave"))
    assert (await client.get(callback)).status_code == 200
    replay = await client.get(callback)
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "UNAUTHORIZED"
    failures = await audit_details(app, "auth.login_failed")
    assert failures[-1]["reason"] == "unknown_or_replayed_state"


async def test_missing_state_and_error_callbacks_are_refused_and_audited(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    missing = await client.get("/auth/oauth/callback", params={"code": "abc"})
    assert missing.status_code == 401
    authorization_url = await start_login(client, provider="acme")
    state = query_of(authorization_url)["state"]
    denied = await client.get(
        "/auth/oauth/callback", params={"state": state, "error": "access_denied"}
    )
    assert denied.status_code == 401
    reasons = [entry["reason"] for entry in await audit_details(app, "auth.login_failed")]
    assert reasons == ["missing_state", "provider_error"]


async def test_a_wrong_code_is_refused(
    app: FastAPI, client: httpx.AsyncClient, acme: TestProvider
) -> None:
    authorization_url = await start_login(client, provider="acme")
    state = query_of(authorization_url)["state"]
    response = await client.get(
        "/auth/oauth/callback", params={"state": state, "code": "not-a-code-the-provider-issued"}
    )
    assert response.status_code == 401
    assert (await audit_details(app, "auth.login_failed"))[-1]["reason"] == "code"


async def test_a_mismatched_nonce_is_refused(
    app: FastAPI, client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID
) -> None:
    acme.set_user("erin", {**ALICE, "email": "erin@acme.example"})
    authorization_url = await start_login(client, provider="acme")
    nonce = query_of(authorization_url)["nonce"]
    # Someone swaps the nonce on the way to the provider: the ID token then carries another.
    tampered = authorization_url.replace(f"nonce={nonce}", "nonce=attacker-chosen-nonce")
    response = await client.get(path_and_query(acme.authorize(tampered, "erin")))
    assert response.status_code == 401
    assert (await audit_details(app, "auth.login_failed"))[-1]["reason"] == "nonce"


async def test_pkce_binds_the_code_to_this_login(
    app: FastAPI, client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID
) -> None:
    acme.set_user("frank", {**ALICE, "email": "frank@acme.example"})
    authorization_url = await start_login(client, provider="acme")
    challenge = query_of(authorization_url)["code_challenge"]
    # A code obtained for another challenge (an intercepted code) cannot be redeemed.
    tampered = authorization_url.replace(challenge, "A" * 43)
    response = await client.get(path_and_query(acme.authorize(tampered, "frank")))
    assert response.status_code == 401
    assert (await audit_details(app, "auth.login_failed"))[-1]["reason"] == "code"


async def test_provider_down_gives_503_on_login(
    app: FastAPI, client: httpx.AsyncClient, shared: TestProvider
) -> None:
    # `shared` has not been used for a login in this module yet: discovery is not cached.
    shared.down = True
    try:
        response = await client.get("/auth/oauth/login", params={"provider": "shared"})
    finally:
        shared.down = False
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"


async def test_unknown_provider_and_ambiguous_choice(client: httpx.AsyncClient) -> None:
    assert (await client.get("/auth/oauth/login", params={"provider": "nope"})).status_code == 404
    # Two providers are configured: the caller must choose.
    assert (await client.get("/auth/oauth/login")).status_code == 422


async def test_providers_are_listed(client: httpx.AsyncClient, acme: TestProvider) -> None:
    response = await client.get("/auth/oauth/providers")
    assert response.status_code == 200
    listed = {entry["name"]: entry for entry in response.json()["data"]}
    assert set(listed) == {"acme", "shared"}
    assert listed["acme"]["issuer"] == acme.issuer
    assert listed["acme"]["login_url"] == "/auth/oauth/login?provider=acme"


async def test_existing_account_is_linked_only_with_a_verified_email(
    app: FastAPI, client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID
) -> None:
    await create_account(
        app,
        acme_org,
        "grace@acme.example",
        role=Role.USER,
    )
    acme.set_user("grace", {**ALICE, "email": "grace@acme.example", "email_verified": False})
    refused = await _login(client, acme, "grace")
    assert refused.status_code == 409
    acme.set_user("grace", {**ALICE, "email": "grace@acme.example", "email_verified": True})
    linked = await _login(client, acme, "grace")
    assert linked.status_code == 200


async def test_a_user_deactivated_in_budapp_stays_locked_out(
    client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID, world: World
) -> None:
    acme.set_user("heidi", {**ALICE, "email": "heidi@acme.example"})
    first = await _login(client, acme, "heidi")
    token = first.json()["data"]["access_token"]
    me = (await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})).json()
    deactivate = await client.put(
        f"/users/{me['data']['id']}",
        json={"is_active": False},
        headers=world["super_admin"].headers,
    )
    assert deactivate.status_code == 200, deactivate.text
    again = await _login(client, acme, "heidi")
    assert again.status_code == 401


async def test_logout_ends_the_provider_session_too(
    client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID
) -> None:
    acme.set_user("ivan", {**ALICE, "email": "ivan@acme.example"})
    tokens = (await _login(client, acme, "ivan")).json()["data"]
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    response = await client.post(
        "/auth/oauth/logout", json={"redirect_to": REDIRECT_TARGET}, headers=headers
    )
    assert response.status_code == 200
    url = response.json()["data"]["end_session_url"]
    assert url.startswith(f"{acme.issuer}/oauth2/end_session?")
    assert query_of(url) == {"client_id": "budapp", "post_logout_redirect_uri": REDIRECT_TARGET}
    assert (await client.get("/auth/me", headers=headers)).status_code == 401


async def test_password_login_is_refused_in_oidc_mode_except_for_super_admins(
    app: FastAPI, client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = app.state.settings.model_copy(update={"oidc_allow_password_login": False})
    monkeypatch.setattr(components(app), "settings", strict)
    user = await client.post(
        "/auth/login", json={"email": "user@example.com", "password": "correct-horse-battery"}
    )
    assert user.status_code == 403
    assert user.json()["error"]["code"] == "FORBIDDEN"
    admin = await client.post(
        "/auth/login",
        json={"email": "super_admin@example.com", "password": "correct-horse-battery"},
    )
    assert admin.status_code == 200
    reasons = [entry["reason"] for entry in await audit_details(app, "auth.login_failed")]
    assert reasons == ["password_login_disabled"]
