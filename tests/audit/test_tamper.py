"""Tampering with the stored chain, as someone with write access to the database would, is
caught by POST /audit/verify, which names the first record that no longer holds."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, insert, select, text, update

from budapp.audit.chain import GENESIS_HASH, HASHED_FIELDS, link_hash
from budapp.audit.models import AuditChainHead, AuditRecord
from budapp.core.components import components
from budapp.core.roles import Role
from tests.factories import create_account, create_organization, login

RECORDS = AuditRecord.__table__
HEAD = AuditChainHead.__table__


@dataclass
class Chain:
    app: FastAPI
    client: httpx.AsyncClient
    headers: dict[str, str]
    length: int
    # A record in the middle, made through the API, with every field filled in.
    target: int

    async def verify(self, **body: int) -> dict[str, Any]:
        response = await self.client.post("/audit/verify", json=body, headers=self.headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["data"]
        return result

    async def row(self, sequence: int) -> dict[str, Any]:
        async with components(self.app).engine.connect() as connection:
            statement = select(RECORDS).where(RECORDS.c.sequence == sequence)
            return dict((await connection.execute(statement)).mappings().one())

    async def execute(self, *statements: Any) -> None:
        async with components(self.app).engine.begin() as connection:
            for statement in statements:
                await connection.execute(statement)

    async def tamper(self, at: int, /, **values: Any) -> None:
        async with components(self.app).engine.begin() as connection:
            if "details" in values:
                # JSON text through plain SQL, as a forger would write it.
                await connection.execute(
                    text("UPDATE audit_records SET details = :details WHERE sequence = :at"),
                    {"details": json.dumps(values.pop("details")), "at": at},
                )
            if values:
                statement = update(RECORDS).where(RECORDS.c.sequence == at).values(values)
                await connection.execute(statement)

    async def remove(self, *sequences: int) -> None:
        await self.execute(delete(RECORDS).where(RECORDS.c.sequence.in_(sequences)))


@pytest.fixture
async def chain(app: FastAPI, client: httpx.AsyncClient) -> Chain:
    organization = await create_organization(app, "Tamper Org")
    admin = await login(
        client, await create_account(app, organization, "root@example.com", Role.SUPER_ADMIN)
    )
    headers = {**admin.headers, "User-Agent": "tamper-tests", "X-Request-ID": "tamper"}

    async def call(method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == status, response.text
        return response.json()["data"] if response.content else None

    other = await call("POST", "/organizations", {"name": "Other"}, 201)
    await call("PUT", f"/organizations/{other['id']}", {"description": "the other one"})
    user = await call(
        "POST", "/users", {"email": "u@example.com", "name": "U", "password": "long-enough"}, 201
    )
    await call("PUT", f"/users/{user['id']}/roles", {"role": "project_admin"})
    project = await call("POST", "/projects", {"name": "P"}, 201)
    await call("PUT", f"/projects/{project['id']}", {"description": "described"})
    members = f"/projects/{project['id']}/members"
    await call("POST", members, {"user_id": user["id"]}, 201)
    await call("PUT", f"{members}/{user['id']}", {"role": "viewer"})
    await call("DELETE", f"{members}/{user['id']}", status=204)
    await call("POST", "/projects", {"name": "Q"}, 201)
    await client.post("/auth/login", json={"email": "u@example.com", "password": "wrong-one"})

    result = await client.post("/audit/verify", headers=headers)
    intact = result.json()["data"]
    length = intact["checked"]
    assert 14 <= length <= 20
    assert intact == {
        "ok": True,
        "checked": length,
        "first_sequence": 1,
        "last_sequence": length,
        "first_broken": None,
    }
    async with components(app).engine.connect() as connection:
        statement = select(RECORDS.c.sequence).where(RECORDS.c.action == "user.update")
        target = (await connection.execute(statement)).scalar_one()
    assert 3 < target < length - 3
    return Chain(app, client, headers, length, target)


def assert_broken_at(result: dict[str, Any], sequence: int, record_id: Any = None) -> None:
    assert result["ok"] is False
    assert result["first_broken"]["sequence"] == sequence, result
    assert result["first_broken"]["reason"]
    if record_id is not None:
        assert result["first_broken"]["record_id"] == str(record_id)


# --- changing one field ----------------------------------------------------------------------

FORGERIES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "sequence": lambda row: row["sequence"] + 1000,
    "id": lambda row: uuid.uuid4(),
    "created_at": lambda row: row["created_at"] - timedelta(microseconds=1),
    "action": lambda row: "user.create",
    "resource_type": lambda row: "organization",
    "resource_id": lambda row: str(uuid.uuid4()),
    "actor_type": lambda row: "system",
    "actor_id": lambda row: str(uuid.uuid4()),
    "actor_label": lambda row: "mallory@example.com",
    "organization_id": lambda row: uuid.uuid4(),
    "ip_address": lambda row: "10.6.6.6",
    "user_agent": lambda row: row["user_agent"] + " ",
    "request_id": lambda row: "someone-else",
    "details": lambda row: {"changes": {"role": {"old": "user", "new": "org_admin"}}},
    "previous_hash": lambda row: GENESIS_HASH,
    "current_hash": lambda row: hashlib.sha256(b"forged").hexdigest(),
}


def test_every_hashed_field_is_forged_below() -> None:
    assert set(FORGERIES) == {*HASHED_FIELDS, "current_hash"}


@pytest.mark.parametrize("field", list(FORGERIES))
async def test_changing_any_field_breaks_the_chain_at_that_record(chain: Chain, field: str) -> None:
    original = await chain.row(chain.target)
    forged = FORGERIES[field](original)
    current = original[field]
    assert forged != (
        json.loads(current) if field == "details" and isinstance(current, str) else current
    )
    await chain.tamper(chain.target, **{field: forged})

    result = await chain.verify()
    # A record moved away leaves its position empty: no id to expect there.
    expected_id = {"sequence": None, "id": forged}.get(field, original["id"])
    assert_broken_at(result, chain.target, expected_id)
    assert result["checked"] == chain.target - 1


@pytest.mark.parametrize(
    "field",
    ["resource_id", "actor_id", "actor_label", "organization_id", "ip_address", "user_agent"],
)
async def test_erasing_a_field_breaks_the_chain(chain: Chain, field: str) -> None:
    assert (await chain.row(chain.target))[field] is not None
    await chain.tamper(chain.target, **{field: None})
    assert_broken_at(await chain.verify(), chain.target)


@pytest.mark.parametrize("position", ["first", "last"])
async def test_changing_an_end_of_the_chain_is_caught(chain: Chain, position: str) -> None:
    sequence = 1 if position == "first" else chain.length
    await chain.tamper(sequence, details={"values": {"name": "forged"}})
    assert_broken_at(await chain.verify(), sequence)


async def test_recomputing_the_forged_records_hash_breaks_the_next_link(chain: Chain) -> None:
    row = await chain.row(chain.target)
    row["action"] = "user.create"
    await chain.tamper(chain.target, action=row["action"], current_hash=link_hash(row))
    result = await chain.verify()
    assert_broken_at(result, chain.target + 1)
    assert "previous_hash" in result["first_broken"]["reason"]


async def test_recomputing_the_last_records_hash_disagrees_with_the_head(chain: Chain) -> None:
    row = await chain.row(chain.length)
    row["actor_label"] = "mallory@example.com"
    await chain.tamper(chain.length, actor_label=row["actor_label"], current_hash=link_hash(row))
    result = await chain.verify()
    assert_broken_at(result, chain.length)
    assert "head" in result["first_broken"]["reason"]


# --- removing, adding and reordering records -------------------------------------------------


async def test_deleting_a_record_in_the_middle_is_caught_there(chain: Chain) -> None:
    await chain.remove(chain.target)
    result = await chain.verify()
    assert_broken_at(result, chain.target)
    assert result["checked"] == chain.target - 1


async def test_deleting_the_first_record_is_caught(chain: Chain) -> None:
    await chain.remove(1)
    assert_broken_at(await chain.verify(), 1)


async def test_deleting_the_last_record_is_caught(chain: Chain) -> None:
    await chain.remove(chain.length)
    result = await chain.verify()
    assert_broken_at(result, chain.length)
    assert result["checked"] == chain.length - 1


async def test_cutting_off_the_tail_is_caught(chain: Chain) -> None:
    await chain.remove(*range(chain.target, chain.length + 1))
    assert_broken_at(await chain.verify(), chain.target)


def _forged_after(previous: dict[str, Any], sequence: int, *, valid_hash: bool) -> dict[str, Any]:
    row = {
        **previous,
        "sequence": sequence,
        "id": uuid.uuid4(),
        "action": "user.update",
        "actor_label": "mallory@example.com",
        "previous_hash": previous["current_hash"],
    }
    row["current_hash"] = (
        link_hash(row) if valid_hash else hashlib.sha256(str(row["id"]).encode()).hexdigest()
    )
    return row


@pytest.mark.parametrize("valid_hash", [False, True])
async def test_inserting_a_forged_record_in_the_middle_is_caught(
    chain: Chain, valid_hash: bool
) -> None:
    # The forger makes room at `target` by renumbering the records after it, and the head.
    for sequence in range(chain.length, chain.target - 1, -1):
        await chain.tamper(sequence, sequence=sequence + 1)
    forged = _forged_after(await chain.row(chain.target - 1), chain.target, valid_hash=valid_hash)
    await chain.execute(
        insert(RECORDS).values(forged),
        update(HEAD).values(last_sequence=HEAD.c.last_sequence + 1),
    )
    result = await chain.verify()
    # A forgery with a wrong hash fails itself; one with a right hash fails the next link.
    assert_broken_at(result, chain.target + (1 if valid_hash else 0))


@pytest.mark.parametrize("valid_hash", [False, True])
async def test_appending_a_record_behind_the_heads_back_is_caught(
    chain: Chain, valid_hash: bool
) -> None:
    forged = _forged_after(await chain.row(chain.length), chain.length + 1, valid_hash=valid_hash)
    await chain.execute(insert(RECORDS).values(forged))
    result = await chain.verify()
    assert_broken_at(result, chain.length + 1)


async def test_swapping_two_records_is_caught_at_the_first(chain: Chain) -> None:
    first, second = chain.target, chain.target + 1
    await chain.tamper(first, sequence=10_000)
    await chain.tamper(second, sequence=first)
    await chain.tamper(10_000, sequence=second)
    result = await chain.verify()
    assert_broken_at(result, first)
    assert result["checked"] == first - 1


@pytest.mark.parametrize(
    "values",
    [
        {"last_hash": hashlib.sha256(b"forged head").hexdigest()},
        {"last_sequence": HEAD.c.last_sequence - 1},
        {"last_sequence": HEAD.c.last_sequence + 1},
    ],
    ids=["hash", "shorter", "longer"],
)
async def test_a_head_that_disagrees_with_the_records_is_caught(
    chain: Chain, values: dict[str, Any]
) -> None:
    await chain.execute(update(HEAD).values(values))
    result = await chain.verify()
    assert result["ok"] is False
    assert result["first_broken"]["sequence"] in (chain.length, chain.length + 1)


# --- ranges ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "first", "last"),
    [
        ({"from_sequence": 3, "to_sequence": 9}, 3, 9),
        ({"to_sequence": 6}, 1, 6),
        ({"from_sequence": 5}, 5, None),
        ({"from_sequence": 2, "to_sequence": 2}, 2, 2),
        ({}, 1, None),
    ],
)
async def test_verifying_a_range_of_an_intact_chain(
    chain: Chain, body: dict[str, int], first: int, last: int | None
) -> None:
    last = last or chain.length
    result = await chain.verify(**body)
    assert result == {
        "ok": True,
        "checked": last - first + 1,
        "first_sequence": first,
        "last_sequence": last,
        "first_broken": None,
    }


async def test_a_range_is_judged_only_by_the_records_in_it(chain: Chain) -> None:
    target = chain.target
    await chain.tamper(target, action="user.create")
    after = await chain.verify(from_sequence=target + 1)
    assert after["ok"] is True
    assert after["checked"] == chain.length - target
    before = await chain.verify(to_sequence=target - 1)
    assert (before["ok"], before["checked"]) == (True, target - 1)

    around = await chain.verify(from_sequence=target - 1, to_sequence=target + 1)
    assert_broken_at(around, target)
    assert around["checked"] == 1
    assert_broken_at(await chain.verify(from_sequence=target, to_sequence=target), target)
    assert_broken_at(await chain.verify(from_sequence=2), target)


async def test_a_range_past_the_end_reports_the_missing_records(chain: Chain) -> None:
    result = await chain.verify(from_sequence=chain.length - 1, to_sequence=chain.length + 5)
    assert_broken_at(result, chain.length + 1)
    assert result["checked"] == 2


@pytest.mark.parametrize("chunk", [4, 5])
async def test_every_position_is_named_whatever_the_chunk_size(
    chain: Chain, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # Small chunks put records at every place of a chunk: first, inside, last.
    monkeypatch.setattr("budapp.audit.service.VERIFY_CHUNK", chunk)
    for sequence in range(1, chain.length + 1):
        original = await chain.row(sequence)
        await chain.tamper(sequence, actor_label="mallory@example.com")
        changed = await chain.verify()
        await chain.tamper(sequence, actor_label=original["actor_label"])
        assert_broken_at(changed, sequence, original["id"])
        assert changed["checked"] == sequence - 1

        await chain.remove(sequence)
        removed = await chain.verify()
        await chain.execute(insert(RECORDS).values(original))
        assert_broken_at(removed, sequence)
        assert removed["checked"] == sequence - 1
    assert (await chain.verify())["ok"] is True
