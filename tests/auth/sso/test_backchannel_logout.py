"""OpenID Connect Back-Channel Logout: the provider posts a signed logout token and budapp ends
the sessions it names, at once (access tokens included), once per token."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from budapp.auth.backchannel import BACKCHANNEL_LOGOUT_EVENT
from tests.auth.sso.conftest import ACME_ORG
from tests.auth.sso.helpers import audit_details, path_and_query, start_login
from tests.auth.sso.provider import TestProvider
from tests.factories import World, create_organization

ROUTE = "/auth/oauth/backchannel-logout"
EVENTS = {BACKCHANNEL_LOGOUT_EVENT: {}}
CAROL = {
    "email": "carol@acme.example",
    "email_verified": True,
    "name": "Carol Acme",
    "realm_access": {"roles": ["user"]},
}


@pytest.fixture
async def acme_org(app: FastAPI) -> uuid.UUID:
    return await create_organization(app, ACME_ORG)


async def _sso_login(
    client: httpx.AsyncClient, acme: TestProvider, sub: str, sid: str | None
) -> dict[str, str]:
    """A browser login through the provider, whose session there is `sid`; the headers of
    the budapp access token it ends with."""
    acme.set_user(sub, {**CAROL, "email": f"{sub}@acme.example"})
    acme.session_id = sid
    try:
        callback = acme.authorize(await start_login(client, provider="acme"), sub)
        response = await client.get(path_and_query(callback))
    finally:
        acme.session_id = None
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['data']['access_token']}"}


async def _post(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(ROUTE, data={"logout_token": token})


async def _status(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return (await client.get("/auth/me", headers=headers)).status_code


async def test_a_sid_ends_that_provider_session_only(
    app: FastAPI, client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID
) -> None:
    first = await _sso_login(client, acme, "carol", "op-session-1")
    second = await _sso_login(client, acme, "carol", "op-session-2")
    assert await _status(client, first) == await _status(client, second) == 200  # both warm

    response = await _post(client, acme.mint({"sid": "op-session-1", "events": EVENTS}))

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert await _status(client, first) == 401
    assert await _status(client, second) == 200
    assert (await audit_details(app, "auth.backchannel_logout"))[-1] == {
        "provider": "acme",
        "by": "sid",
        "sessions_ended": 1,
    }


async def test_a_sub_ends_every_session_of_that_user_through_the_provider(
    client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID, world: World
) -> None:
    carol = [await _sso_login(client, acme, "carol", f"op-{n}") for n in range(2)]
    dave = await _sso_login(client, acme, "dave", "op-dave")
    password_user = world["user"].headers

    response = await _post(client, acme.mint({"sub": "carol", "events": EVENTS}))

    assert response.status_code == 200, response.text
    assert [await _status(client, headers) for headers in carol] == [401, 401]
    assert await _status(client, dave) == 200
    assert await _status(client, password_user) == 200


async def test_sid_and_sub_also_end_the_users_sessions_whose_sid_is_unknown(
    client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID
) -> None:
    named = await _sso_login(client, acme, "carol", "op-named")
    other = await _sso_login(client, acme, "carol", "op-other")
    unnamed = await _sso_login(client, acme, "carol", None)  # an ID token without sid

    token = acme.mint({"sub": "carol", "sid": "op-named", "events": EVENTS})
    assert (await _post(client, token)).status_code == 200

    assert await _status(client, named) == 401
    assert await _status(client, unnamed) == 401
    assert await _status(client, other) == 200


async def test_a_logout_token_is_accepted_once(
    client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID
) -> None:
    token = acme.mint({"sub": "carol", "events": EVENTS})
    assert (await _post(client, token)).status_code == 200
    # A session opened after the logout is not ended by the same token replayed.
    later = await _sso_login(client, acme, "carol", "op-later")
    replay = await _post(client, token)
    assert replay.status_code == 400
    assert "already used" in replay.json()["error"]["message"]
    assert await _status(client, later) == 200


async def test_an_unknown_user_is_nothing_to_end(
    app: FastAPI, client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID
) -> None:
    response = await _post(client, acme.mint({"sub": "nobody", "events": EVENTS}))
    assert response.status_code == 200
    assert (await audit_details(app, "auth.backchannel_logout"))[-1]["sessions_ended"] == 0


def _foreign_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


BAD_TOKENS: dict[str, Any] = {
    "no event": lambda acme: acme.mint({"sub": "carol"}),
    "another event": lambda acme: acme.mint({"sub": "carol", "events": {"urn:other": {}}}),
    "a nonce": lambda acme: acme.mint({"sub": "carol", "events": EVENTS, "nonce": "n"}),
    "neither sid nor sub": lambda acme: acme.mint({"events": EVENTS}),
    "no jti": lambda acme: acme.mint({"sub": "carol", "events": EVENTS, "jti": None}),
    "expired": lambda acme: acme.mint({"sub": "carol", "events": EVENTS}, lifetime=-3600),
    "another audience": lambda acme: acme.mint({"sub": "carol", "events": EVENTS, "aud": "x"}),
    "forged signature": lambda acme: acme.mint(
        {"sub": "carol", "events": EVENTS}, key=_foreign_key()
    ),
    "unknown issuer": lambda acme: acme.mint(
        {"sub": "carol", "events": EVENTS, "iss": "https://evil.example"}
    ),
    "not a JWT": lambda _: "garbage",
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_bad_logout_tokens_are_a_400_and_end_nothing(
    client: httpx.AsyncClient, acme: TestProvider, acme_org: uuid.UUID, case: str
) -> None:
    session = await _sso_login(client, acme, "carol", "op-1")
    response = await _post(client, BAD_TOKENS[case](acme))

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "BAD_REQUEST"
    assert await _status(client, session) == 200


async def test_a_missing_logout_token_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(ROUTE, data={})
    assert response.status_code == 400
    assert "logout_token" in response.json()["error"]["message"]
