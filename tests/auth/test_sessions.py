from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI

from budapp.auth.tokens import TOKEN_ISSUER
from budapp.core.components import components
from budapp.core.db import utcnow
from tests.factories import World, login


async def test_me_describes_the_caller(client: httpx.AsyncClient, world: World) -> None:
    response = await client.get("/auth/me", headers=world["user"].headers)
    assert response.status_code == 200
    me = response.json()["data"]
    assert me["email"] == "user@example.com"
    assert me["role"] == "user"
    assert me["effective_roles"] == ["user"]
    assert me["organization"]["name"] == "Org A"
    assert [p["project_name"] for p in me["projects"]] == ["Project A"]
    assert "endpoint:manage" in me["projects"][0]["permissions"]


async def test_access_token_carries_the_seed_claims(world: World) -> None:
    claims = jwt.decode(world["org_admin"].token, options={"verify_signature": False})
    assert claims["sub"] == str(world["org_admin"].id)
    assert claims["org_id"] == str(world.org_a)
    assert claims["preferred_username"] == "org_admin@example.com"
    assert claims["realm_access"]["roles"] == ["org_admin"]
    assert claims["resource_access"]["budapp"]["roles"] == ["org_admin"]
    assert claims["exp"] - claims["iat"] == 900


async def test_jwks_verifies_access_tokens(client: httpx.AsyncClient, world: World) -> None:
    keys = (await client.get("/auth/jwks")).json()["keys"]
    key = jwt.PyJWK(keys[0])
    header = jwt.get_unverified_header(world["user"].token)
    assert header["kid"] == keys[0]["kid"]
    claims = jwt.decode(world["user"].token, key, algorithms=["EdDSA"], audience="budapp")
    assert claims["sub"] == str(world["user"].id)


async def test_refresh_rotates_the_refresh_token(client: httpx.AsyncClient, world: World) -> None:
    first = world["user"].refresh_token
    response = await client.post("/auth/refresh", json={"refresh_token": first})
    assert response.status_code == 200
    tokens = response.json()["data"]
    assert tokens["refresh_token"] != first
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200


async def test_reused_refresh_token_revokes_the_whole_family(
    client: httpx.AsyncClient, world: World
) -> None:
    stolen = world["user"].refresh_token
    rotated = (await client.post("/auth/refresh", json={"refresh_token": stolen})).json()["data"]
    replay = await client.post("/auth/refresh", json={"refresh_token": stolen})
    assert replay.status_code == 401
    assert "reuse" in replay.json()["error"]["message"]
    # The legitimate holder's newer tokens die with the family.
    newer = await client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert newer.status_code == 401
    access = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert (await client.get("/auth/me", headers=access)).status_code == 401
    # Other sessions of the same user are untouched.
    assert (await login(client, world["user"])).token


async def test_refresh_rejects_unknown_token(client: httpx.AsyncClient, world: World) -> None:
    response = await client.post("/auth/refresh", json={"refresh_token": "bud_rt_forged"})
    assert response.status_code == 401


async def test_logout_ends_the_session(client: httpx.AsyncClient, world: World) -> None:
    user = world["user"]
    response = await client.post("/auth/logout", headers=user.headers)
    assert response.status_code == 204
    assert (await client.get("/auth/me", headers=user.headers)).status_code == 401
    refresh = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refresh.status_code == 401


async def test_logout_all_sessions_ends_every_session(
    client: httpx.AsyncClient, world: World
) -> None:
    user = world["user"]
    first_token = user.token
    await login(client, user)
    response = await client.post("/auth/logout", json={"all_sessions": True}, headers=user.headers)
    assert response.status_code == 204
    for token in (first_token, user.token):
        me = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = str(uuid.uuid4())
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _alg_none(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{body}."


@pytest.mark.parametrize("forge", [_tamper, _alg_none, lambda t: t[:-4], lambda _: "garbage"])
async def test_forged_tokens_are_refused(
    client: httpx.AsyncClient, world: World, forge: object
) -> None:
    assert callable(forge)
    headers = {"Authorization": f"Bearer {forge(world['user'].token)}"}
    response = await client.get("/auth/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


async def test_expired_token_is_refused(
    client: httpx.AsyncClient, world: World, app: FastAPI
) -> None:
    user = world["user"]
    claims = jwt.decode(user.token, options={"verify_signature": False})
    token, _ = components(app)[TOKEN_ISSUER].issue(
        user_id=user.id,
        session_id=uuid.UUID(claims["sid"]),
        organization_id=user.organization_id,
        email=user.email,
        role="user",
        now=utcnow() - timedelta(hours=1),
    )
    response = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_token_signed_by_another_key_is_refused(
    client: httpx.AsyncClient, world: World
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: PLC0415

    claims = jwt.decode(world["user"].token, options={"verify_signature": False})
    token = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    response = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_token_of_deleted_user_is_refused(client: httpx.AsyncClient, world: World) -> None:
    deleted = await client.delete(f"/users/{world['user'].id}", headers=world["org_admin"].headers)
    assert deleted.status_code == 204
    assert (await client.get("/auth/me", headers=world["user"].headers)).status_code == 401


async def test_token_of_deactivated_user_is_refused(
    client: httpx.AsyncClient, world: World
) -> None:
    await client.put(
        f"/users/{world['user'].id}", json={"is_active": False}, headers=world["org_admin"].headers
    )
    assert (await client.get("/auth/me", headers=world["user"].headers)).status_code == 401
    refresh = await client.post(
        "/auth/refresh", json={"refresh_token": world["user"].refresh_token}
    )
    assert refresh.status_code == 401


async def test_role_change_applies_to_existing_tokens(
    client: httpx.AsyncClient, world: World
) -> None:
    user = world["user"]
    assert (await client.get("/users", headers=user.headers)).status_code == 403
    promoted = await client.put(
        f"/users/{user.id}/roles",
        json={"role": "project_admin"},
        headers=world["org_admin"].headers,
    )
    assert promoted.status_code == 200
    assert (await client.get("/users", headers=user.headers)).status_code == 200


@pytest.mark.parametrize("header", ["", "Bearer", "Basic dXNlcjpwYXNz", "Bearer  "])
async def test_missing_or_malformed_authorization_is_401(
    client: httpx.AsyncClient, header: str
) -> None:
    response = await client.get("/auth/me", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
