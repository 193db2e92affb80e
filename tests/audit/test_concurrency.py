"""Many requests writing at once still append to one unbroken chain: the head row serialises
appends, so sequences have no gaps or duplicates and every link holds."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from budapp.audit.models import AuditChainHead, AuditRecord
from budapp.core.components import components
from tests.factories import PASSWORD, World

CREATORS = ["project_admin", "org_admin", "super_admin", "org_admin_b"]
# Who may update which project: its admin members and the org admins.
EDITORS = [
    ("project_admin", "project_a"),
    ("org_admin", "project_a"),
    ("super_admin", "project_b"),
    ("user_b", "project_b"),
    ("org_admin_b", "project_b"),
]


async def chain_state(app: FastAPI) -> tuple[list[AuditRecord], AuditChainHead]:
    async with components(app).session_factory() as session:
        records = (await session.scalars(select(AuditRecord).order_by(AuditRecord.sequence))).all()
        head = await session.get(AuditChainHead, 1)
        assert head is not None
        return list(records), head


async def test_parallel_mutations_leave_an_unbroken_chain(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    before = len((await chain_state(app))[0])

    def send(caller: str, request_id: str, method: str, path: str, body: Any) -> Any:
        headers = {**world[caller].headers, "X-Request-ID": request_id}
        return client.request(method, path, json=body, headers=headers)

    creates = [
        send(CREATORS[i % len(CREATORS)], f"create-{i}", "POST", "/projects", {"name": f"P{i}"})
        for i in range(24)
    ]
    updates = []
    for i in range(20):
        editor, project = EDITORS[i % len(EDITORS)]
        path = f"/projects/{getattr(world, project)}"
        updates.append(send(editor, f"update-{i}", "PUT", path, {"description": f"edit {i}"}))
    logins = [
        client.post(
            "/auth/login",
            json={"email": world[name].email, "password": password},
            headers={"X-Request-ID": f"login-{name}-{ok}"},
        )
        for name in ("user", "outsider", "user_b")
        for ok, password in ((True, PASSWORD), (False, "wrong-password"))
    ]
    first_wave = await asyncio.gather(*creates, *updates, *logins)
    assert [r.status_code for r in first_wave] == [201] * 24 + [200] * 20 + [200, 401] * 3

    created = [
        (CREATORS[i % len(CREATORS)], response.json()["data"]["id"])
        for i, response in enumerate(first_wave[:24])
    ]
    renames = [
        send(caller, f"rename-{i}", "PUT", f"/projects/{project_id}", {"name": f"R{i}"})
        for i, (caller, project_id) in enumerate(created)
    ]
    deletes = [
        send("org_admin", f"delete-{i}", "DELETE", f"/projects/{project_id}", None)
        for i, (caller, project_id) in enumerate(created)
        if caller == "project_admin"
    ]
    second_wave = await asyncio.gather(*renames, *deletes)
    assert [r.status_code for r in second_wave] == [200] * 24 + [204] * len(deletes)

    records, head = await chain_state(app)
    expected = 24 * 2 + 20 + 6 + 24 + len(deletes)
    assert len(records) == before + expected
    assert [r.sequence for r in records] == list(range(1, len(records) + 1))
    assert (head.last_sequence, head.last_hash) == (len(records), records[-1].current_hash)
    for previous, record in itertools.pairwise(records):
        assert record.previous_hash == previous.current_hash

    # A request's records are appended together: no other request's record falls between them.
    by_request: dict[str, list[int]] = defaultdict(list)
    for record in records[before:]:
        assert record.request_id is not None
        by_request[record.request_id].append(record.sequence)
    assert len(by_request) == len(first_wave) + len(second_wave)
    for request_id, sequences in by_request.items():
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences))), request_id
        assert len(sequences) == (2 if request_id.startswith("create-") else 1), request_id

    response = await client.post("/audit/verify", headers=world["super_admin"].headers)
    result = response.json()["data"]
    assert result == {
        "ok": True,
        "checked": len(records),
        "first_sequence": 1,
        "last_sequence": len(records),
        "first_broken": None,
    }
