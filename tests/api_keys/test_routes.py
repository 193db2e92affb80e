"""The API-key routes: a key is shown once and stored hashed, expires and is revoked as asked,
and is accepted by /api-keys/current exactly while it is valid."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from budapp.api_keys.models import ApiKey
from budapp.api_keys.resolver import API_KEY_RESOLVER
from budapp.core.components import components
from budapp.core.db import session_scope
from tests.factories import World

KEY_SHAPE = re.compile(r"^bud_sk_[A-Za-z0-9_-]{43}$")


def keys_of(project: uuid.UUID) -> str:
    return f"/projects/{project}/api-keys"


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def x_api_key(raw: str) -> dict[str, str]:
    return {"X-API-Key": raw}


async def create_key(
    client: httpx.AsyncClient,
    world: World,
    *,
    by: str = "project_admin",
    project: uuid.UUID | None = None,
    **body: Any,
) -> dict[str, Any]:
    response = await client.post(
        keys_of(project or world.project_a),
        json={"name": f"key {uuid.uuid4().hex[:6]}", **body},
        headers=world[by].headers,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()["data"]
    return created


async def revoke_key(client: httpx.AsyncClient, world: World, key_id: str) -> httpx.Response:
    return await client.delete(
        f"{keys_of(world.project_a)}/{key_id}", headers=world["project_admin"].headers
    )


async def current(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.get("/api-keys/current", headers=headers)


async def move_expiry(app: FastAPI, key_id: str, expires_at: datetime) -> None:
    """Moves time for one key: edits its expiry in place and drops the resolver's copy."""
    async with session_scope(components(app).session_factory) as session:
        await session.execute(
            update(ApiKey).where(ApiKey.id == uuid.UUID(key_id)).values(expires_at=expires_at)
        )
    components(app)[API_KEY_RESOLVER].forget(uuid.UUID(key_id))


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "UNAUTHORIZED"
    assert error["message"]


# --- creation: shown once, stored hashed ----------------------------------------------------


async def test_the_key_is_shown_once_at_creation(client: httpx.AsyncClient, world: World) -> None:
    created = await create_key(client, world, name="ci", description="for the pipeline")

    raw = created["key"]
    assert KEY_SHAPE.match(raw), raw
    assert created["prefix"] == raw[:14]
    assert created["status"] == "active"
    assert created["expires_at"] is None
    assert created["revoked_at"] is None
    assert created["last_used_at"] is None
    assert created["created_by"] == str(world["project_admin"].id)
    assert (created["project_id"], created["organization_id"]) == (
        str(world.project_a),
        str(world.org_a),
    )
    assert (created["name"], created["description"]) == ("ci", "for the pipeline")

    headers = world["project_admin"].headers
    listed = await client.get(keys_of(world.project_a), headers=headers)
    fetched = await client.get(f"{keys_of(world.project_a)}/{created['id']}", headers=headers)
    for response in (listed, fetched):
        assert response.status_code == 200, response.text
        assert raw not in response.text
    [item] = listed.json()["data"]
    for shown in (item, fetched.json()["data"]):
        assert "key" not in shown
        assert "key_hash" not in shown
        assert shown == {k: v for k, v in created.items() if k != "key"}


async def test_every_key_is_new(client: httpx.AsyncClient, world: World) -> None:
    keys = [(await create_key(client, world))["key"] for _ in range(5)]
    assert len(set(keys)) == 5
    assert len({key[:14] for key in keys}) == 5


async def test_only_the_hash_of_the_key_is_stored(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    created = await create_key(client, world)
    raw, secret_part = created["key"], created["key"][14:]
    assert (await revoke_key(client, world, created["id"])).status_code == 204
    digest = hashlib.sha256(raw.encode()).hexdigest()

    async with components(app).session_factory() as session:
        table = ApiKey.__table__
        row = (await session.execute(select(table))).mappings().one()
    assert row["key_hash"] == digest
    assert row["prefix"] == raw[:14]
    for column, value in row.items():
        assert secret_part not in str(value), column

    audit = await client.get(
        "/audit", params={"per_page": 500}, headers=world["super_admin"].headers
    )
    assert audit.status_code == 200, audit.text
    records = [r for r in audit.json()["data"] if r["resource_type"] == "api_key"]
    assert {r["action"] for r in records} == {"api_key.create", "api_key.revoke"}
    [creation] = [r for r in records if r["action"] == "api_key.create"]
    assert creation["details"]["values"]["key_hash"] == "***"
    assert secret_part not in audit.text
    assert digest not in audit.text


# --- expiry ---------------------------------------------------------------------------------


async def test_expires_in_days_sets_the_expiry(client: httpx.AsyncClient, world: World) -> None:
    before = datetime.now(UTC)
    created = await create_key(client, world, expires_in_days=30)
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert before + timedelta(days=30) <= expires_at <= datetime.now(UTC) + timedelta(days=30)
    assert created["status"] == "active"


@pytest.mark.parametrize("ahead", [timedelta(minutes=5), timedelta(days=3650) - timedelta(hours=1)])
async def test_expires_at_is_kept_as_given(
    client: httpx.AsyncClient, world: World, ahead: timedelta
) -> None:
    expires_at = (datetime.now(UTC) + ahead).replace(microsecond=0)
    # Given in another zone, the same instant comes back (in UTC).
    given = expires_at.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    created = await create_key(client, world, expires_at=given)
    assert datetime.fromisoformat(created["expires_at"]) == expires_at


def _later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def _naive_later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).replace(tzinfo=None).isoformat()


@pytest.mark.parametrize(
    "expiry",
    [
        pytest.param({"expires_at": _later(days=1), "expires_in_days": 1}, id="both"),
        pytest.param({"expires_at": _later(seconds=-60)}, id="past"),
        pytest.param({"expires_at": _naive_later(days=1)}, id="naive"),
        pytest.param({"expires_at": _later(days=3651)}, id="beyond ten years"),
        pytest.param({"expires_in_days": 0}, id="zero days"),
        pytest.param({"expires_in_days": 3651}, id="too many days"),
        pytest.param({"expires_in_days": -1}, id="negative days"),
    ],
)
async def test_an_invalid_expiry_is_refused(
    app: FastAPI, client: httpx.AsyncClient, world: World, expiry: dict[str, Any]
) -> None:
    response = await client.post(
        keys_of(world.project_a),
        json={"name": "bad", **expiry},
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    async with components(app).session_factory() as session:
        assert (await session.scalars(select(ApiKey))).all() == []


async def test_the_longest_lifetimes_are_accepted(client: httpx.AsyncClient, world: World) -> None:
    created = await create_key(client, world, expires_in_days=3650)
    assert created["status"] == "active"


# --- status ---------------------------------------------------------------------------------


async def test_status_and_its_filter(app: FastAPI, client: httpx.AsyncClient, world: World) -> None:
    await create_key(client, world, name="active")
    await create_key(client, world, name="expiring", expires_in_days=1)
    expired = await create_key(client, world, name="expired", expires_in_days=1)
    revoked = await create_key(client, world, name="revoked")
    both = await create_key(client, world, name="expired then revoked", expires_in_days=1)
    past = datetime.now(UTC) - timedelta(minutes=1)
    await move_expiry(app, expired["id"], past)
    await move_expiry(app, both["id"], past)
    for key in (revoked, both):
        assert (await revoke_key(client, world, key["id"])).status_code == 204

    async def listed(**params: str) -> dict[str, str]:
        response = await client.get(
            keys_of(world.project_a), params=params, headers=world["user"].headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["meta"]["total"] == len(body["data"])
        return {item["name"]: item["status"] for item in body["data"]}

    assert await listed() == {
        "active": "active",
        "expiring": "active",
        "expired": "expired",
        "revoked": "revoked",
        "expired then revoked": "revoked",
    }
    assert await listed(status="active") == {"active": "active", "expiring": "active"}
    assert await listed(status="expired") == {"expired": "expired"}
    assert await listed(status="revoked") == {
        "revoked": "revoked",
        "expired then revoked": "revoked",
    }
    one = await client.get(
        f"{keys_of(world.project_a)}/{expired['id']}", headers=world["user"].headers
    )
    assert one.json()["data"]["status"] == "expired"


async def test_an_unknown_status_filter_is_refused(client: httpx.AsyncClient, world: World) -> None:
    response = await client.get(
        keys_of(world.project_a), params={"status": "paused"}, headers=world["user"].headers
    )
    assert response.status_code == 422, response.text


async def test_a_key_is_listed_only_under_its_own_project(
    client: httpx.AsyncClient, world: World
) -> None:
    key_b = await create_key(client, world, by="user_b", project=world.project_b)
    headers = world["super_admin"].headers

    listed = await client.get(keys_of(world.project_a), headers=headers)
    under_a = await client.get(f"{keys_of(world.project_a)}/{key_b['id']}", headers=headers)
    revoked_under_a = await client.delete(
        f"{keys_of(world.project_a)}/{key_b['id']}", headers=headers
    )

    assert listed.json()["data"] == []
    assert under_a.status_code == 404
    assert revoked_under_a.status_code == 404
    still = await current(client, bearer(key_b["key"]))
    assert still.status_code == 200, still.text


# --- revocation -----------------------------------------------------------------------------


async def test_revoking_is_idempotent_and_takes_effect_at_once(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await create_key(client, world)
    assert (await current(client, bearer(created["key"]))).status_code == 200  # now cached

    assert (await revoke_key(client, world, created["id"])).status_code == 204
    assert_unauthorized(await current(client, bearer(created["key"])))
    assert_unauthorized(await current(client, x_api_key(created["key"])))

    path = f"{keys_of(world.project_a)}/{created['id']}"
    first = (await client.get(path, headers=world["user"].headers)).json()["data"]
    assert first["status"] == "revoked"
    assert first["revoked_at"] is not None
    again = await revoke_key(client, world, created["id"])
    assert again.status_code == 204
    assert again.content == b""
    second = (await client.get(path, headers=world["user"].headers)).json()["data"]
    assert second["revoked_at"] == first["revoked_at"]


async def test_revoking_an_unknown_key_is_not_found(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await revoke_key(client, world, str(uuid.uuid4()))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


async def test_revoking_one_key_leaves_the_others(client: httpx.AsyncClient, world: World) -> None:
    doomed, kept = await create_key(client, world), await create_key(client, world)
    assert (await revoke_key(client, world, doomed["id"])).status_code == 204
    response = await current(client, bearer(kept["key"]))
    assert response.status_code == 200, response.text


async def test_an_expired_key_is_refused(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    created = await create_key(client, world, expires_in_days=1)
    assert (await current(client, bearer(created["key"]))).status_code == 200

    await move_expiry(app, created["id"], datetime.now(UTC) - timedelta(seconds=1))

    response = await current(client, bearer(created["key"]))
    assert_unauthorized(response)
    assert "expired" in response.json()["error"]["message"]


# --- authenticating with a key --------------------------------------------------------------


@pytest.mark.parametrize("header", [bearer, x_api_key], ids=["bearer", "x-api-key"])
async def test_the_key_authenticates_as_its_project(
    client: httpx.AsyncClient, world: World, header: Any
) -> None:
    created = await create_key(client, world, expires_in_days=7)

    response = await current(client, header(created["key"]))

    assert response.status_code == 200, response.text
    assert response.json()["data"] == {
        "key_id": created["id"],
        "prefix": created["prefix"],
        "project_id": str(world.project_a),
        "organization_id": str(world.org_a),
        "expires_at": created["expires_at"],
    }


async def test_a_key_of_another_project_resolves_to_its_own(
    client: httpx.AsyncClient, world: World
) -> None:
    mine = await create_key(client, world)
    theirs = await create_key(client, world, by="user_b", project=world.project_b)

    identity_a = (await current(client, bearer(mine["key"]))).json()["data"]
    identity_b = (await current(client, x_api_key(theirs["key"]))).json()["data"]

    assert (identity_a["project_id"], identity_a["organization_id"]) == (
        str(world.project_a),
        str(world.org_a),
    )
    assert (identity_b["key_id"], identity_b["project_id"], identity_b["organization_id"]) == (
        theirs["id"],
        str(world.project_b),
        str(world.org_b),
    )


def _malformed(world: World) -> dict[str, str]:
    valid_tail = "A" * 43
    return {
        "wrong prefix": "bud_pk_" + valid_tail,
        "no prefix": valid_tail,
        "too short": "bud_sk_" + valid_tail[:-1],
        "too long": "bud_sk_" + valid_tail + "A",
        "bad characters": "bud_sk_" + "!" * 43,
        "garbage": "not-a-key",
        "well formed but unknown": "bud_sk_" + valid_tail,
        "a user's access token": world["user"].token,
    }


@pytest.mark.parametrize("header", [bearer, x_api_key], ids=["bearer", "x-api-key"])
async def test_anything_but_a_valid_key_is_refused(
    client: httpx.AsyncClient, world: World, header: Any
) -> None:
    for name, raw in _malformed(world).items():
        response = await current(client, header(raw))
        assert response.status_code == 401, (name, response.text)
        assert response.json()["error"]["code"] == "UNAUTHORIZED", name


async def test_a_request_without_a_key_is_refused(client: httpx.AsyncClient) -> None:
    assert_unauthorized(await current(client, {}))
    assert_unauthorized(await current(client, {"Authorization": "Basic dXNlcjpwYXNz"}))


async def test_a_key_does_not_open_the_management_api(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await create_key(client, world)
    response = await client.get(keys_of(world.project_a), headers=bearer(created["key"]))
    assert_unauthorized(response)


# --- the project's keys and its deletion ----------------------------------------------------


async def test_a_project_with_an_active_key_cannot_be_deleted(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await create_key(client, world)
    project = f"/projects/{world.project_a}"
    headers = world["project_admin"].headers

    refused = await client.delete(project, headers=headers)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "CONFLICT"
    assert (await client.get(project, headers=headers)).status_code == 200

    assert (await revoke_key(client, world, created["id"])).status_code == 204
    deleted = await client.delete(project, headers=headers)
    assert deleted.status_code == 204, deleted.text
    assert (await client.get(project, headers=headers)).status_code == 404
