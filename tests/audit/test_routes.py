"""The audit API: who may read and verify the trail, keyset pagination, filters, validation
and the JSON lines and CSV exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from budapp.audit.models import AuditRecord
from budapp.audit.schemas import AuditRead
from budapp.core.components import components
from tests.factories import World


async def all_records(app: FastAPI) -> list[AuditRecord]:
    async with components(app).session_factory() as session:
        statement = select(AuditRecord).order_by(AuditRecord.sequence)
        return list((await session.scalars(statement)).all())


def as_json(records: list[AuditRecord]) -> list[dict[str, Any]]:
    return [AuditRead.model_validate(record).model_dump(mode="json") for record in records]


async def walk(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    """Every page of GET /audit, following meta.next_cursor."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/audit", params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        found += body["data"]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return found
        assert len(body["data"]) == body["meta"]["per_page"]


@pytest.fixture
async def activity(app: FastAPI, client: httpx.AsyncClient, world: World) -> World:
    """Records by users of both organizations on top of the world's own."""
    calls = [
        ("org_admin", "PUT", f"/organizations/{world.org_a}", {"description": "A"}),
        ("project_admin", "POST", "/projects", {"name": "Second"}),
        ("project_admin", "PUT", f"/projects/{world.project_a}", {"description": "x"}),
        ("org_admin_b", "PUT", f"/organizations/{world.org_b}", {"description": "B"}),
        ("user_b", "PUT", f"/projects/{world.project_b}", {"description": "y"}),
        ("super_admin", "POST", "/organizations", {"name": "Third"}),
    ]
    for caller, method, path, body in calls:
        response = await client.request(method, path, json=body, headers=world[caller].headers)
        assert response.status_code in (200, 201), response.text
    # A failed login for an unknown e-mail belongs to no organization.
    unknown = {"email": "nobody@example.com", "password": "whatever"}
    assert (await client.post("/auth/login", json=unknown)).status_code == 401
    return world


# --- authorization ---------------------------------------------------------------------------

ROUTES = ["GET /audit", "GET /audit/export", "GET /audit/{record}", "POST /audit/verify"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("caller", "allowed"),
    [
        ("anonymous", 401),
        ("user", 403),
        ("outsider", 403),
        ("project_admin", 403),
        ("user_b", 403),
        ("org_admin", 200),
        ("org_admin_b", 200),
        ("super_admin", 200),
    ],
)
async def test_who_may_use_each_audit_route(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    route: str,
    caller: str,
    allowed: int,
) -> None:
    own = world[caller].organization_id if caller != "anonymous" else world.org_a
    record = next(r for r in await all_records(app) if r.organization_id == own)
    method, path = route.split(" ")
    headers = world[caller].headers if caller != "anonymous" else {}
    response = await client.request(method, path.format(record=record.id), headers=headers)
    expected = allowed
    if route == "POST /audit/verify" and caller in ("org_admin", "org_admin_b"):
        expected = 403
    assert response.status_code == expected, response.text


async def test_org_admin_reads_only_its_own_organization(
    app: FastAPI, client: httpx.AsyncClient, activity: World
) -> None:
    records = await all_records(app)
    for admin, organization in (("org_admin", activity.org_a), ("org_admin_b", activity.org_b)):
        seen = await walk(client, activity[admin].headers, per_page=5)
        expected = [
            r for r in reversed(as_json(records)) if r["organization_id"] == str(organization)
        ]
        assert seen == expected
        assert 0 < len(seen) < len(records)
        exported = (await client.get("/audit/export", headers=activity[admin].headers)).text
        assert [json.loads(line) for line in exported.splitlines()] == expected[::-1]


async def test_org_admin_naming_another_organization_finds_nothing(
    client: httpx.AsyncClient, activity: World
) -> None:
    headers = activity["org_admin"].headers
    params = {"organization_id": str(activity.org_b)}
    listed = await client.get("/audit", params=params, headers=headers)
    assert listed.status_code == 200
    assert listed.json()["data"] == []
    exported = await client.get("/audit/export", params=params, headers=headers)
    assert exported.text == ""


async def test_another_organizations_record_is_not_found(
    app: FastAPI, client: httpx.AsyncClient, activity: World
) -> None:
    foreign = next(r for r in await all_records(app) if r.organization_id == activity.org_b)
    hidden = await client.get(f"/audit/{foreign.id}", headers=activity["org_admin"].headers)
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "NOT_FOUND"
    own = await client.get(f"/audit/{foreign.id}", headers=activity["org_admin_b"].headers)
    assert own.status_code == 200
    assert own.json()["data"] == as_json([foreign])[0]


async def test_super_admin_reads_every_record(
    app: FastAPI, client: httpx.AsyncClient, activity: World
) -> None:
    records = await all_records(app)
    organizations = {r.organization_id for r in records}
    # Both tenants and records of no organization (the unknown e-mail's failed login).
    assert {activity.org_a, activity.org_b, None} <= organizations
    assert await walk(client, activity["super_admin"].headers) == as_json(records)[::-1]


async def test_unknown_record_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    response = await client.get(
        "/audit/00000000-0000-0000-0000-000000000001", headers=world["super_admin"].headers
    )
    assert response.status_code == 404


# --- pagination ------------------------------------------------------------------------------


@pytest.mark.parametrize("per_page", [1, 4, 7])
async def test_keyset_pagination_walks_every_record_once_newest_first(
    app: FastAPI, client: httpx.AsyncClient, activity: World, per_page: int
) -> None:
    records = await all_records(app)
    seen = await walk(client, activity["super_admin"].headers, per_page=per_page)
    sequences = [r["sequence"] for r in seen]
    assert sequences == sorted((r.sequence for r in records), reverse=True)
    assert len(set(sequences)) == len(records)


async def test_pagination_keeps_its_place_while_records_are_added(
    app: FastAPI, client: httpx.AsyncClient, activity: World
) -> None:
    headers = activity["super_admin"].headers
    before = [r.sequence for r in await all_records(app)][::-1]
    first = (await client.get("/audit", params={"per_page": 5}, headers=headers)).json()
    # A new record arrives between the pages: it is newer than the cursor, so not repeated.
    await client.put(
        f"/organizations/{activity.org_a}", json={"description": "later"}, headers=headers
    )
    rest = await walk(client, headers, per_page=5, cursor=first["meta"]["next_cursor"])
    assert [r["sequence"] for r in first["data"] + rest] == before


async def test_pagination_within_a_filter(
    app: FastAPI, client: httpx.AsyncClient, activity: World
) -> None:
    logins = [r for r in as_json(await all_records(app)) if r["action"] == "auth.login"]
    seen = await walk(client, activity["super_admin"].headers, action="auth.login", per_page=2)
    assert seen == logins[::-1]
    assert len(seen) == len(activity.accounts)


# --- filters ---------------------------------------------------------------------------------


FILTERS: dict[str, Any] = {
    "actor_id": lambda w: str(w["project_admin"].id),
    "actor_type": lambda w: "system",
    "action": lambda w: "project.update",
    "resource_type": lambda w: "project",
    "resource_id": lambda w: str(w.project_b),
    "organization_id": lambda w: str(w.org_b),
}


@pytest.mark.parametrize("name", list(FILTERS))
async def test_each_filter_narrows_the_list(
    app: FastAPI, client: httpx.AsyncClient, activity: World, name: str
) -> None:
    value = FILTERS[name](activity)
    records = as_json(await all_records(app))
    expected = [r for r in records if r[name] == value][::-1]
    assert 0 < len(expected) < len(records)
    headers = activity["super_admin"].headers
    assert await walk(client, headers, **{name: value}) == expected
    exported = await client.get("/audit/export", params={name: value}, headers=headers)
    assert [json.loads(line) for line in exported.text.splitlines()] == expected[::-1]


async def test_filters_combine(app: FastAPI, client: httpx.AsyncClient, activity: World) -> None:
    records = as_json(await all_records(app))
    expected = [
        r
        for r in records
        if r["resource_type"] == "project" and r["actor_id"] == str(activity["project_admin"].id)
    ][::-1]
    assert [r["action"] for r in expected] == ["project.update", "project.create"]
    seen = await walk(
        client,
        activity["super_admin"].headers,
        resource_type="project",
        actor_id=str(activity["project_admin"].id),
    )
    assert seen == expected


async def test_since_and_until_bound_the_creation_time(
    app: FastAPI, client: httpx.AsyncClient, activity: World
) -> None:
    records = await all_records(app)
    middle = records[len(records) // 2].created_at
    later = records[-3].created_at
    headers = activity["super_admin"].headers
    as_list = as_json(records)[::-1]

    def between(low: Any, high: Any) -> list[dict[str, Any]]:
        return [
            row
            for record, row in zip(records[::-1], as_list, strict=True)
            if (low is None or record.created_at >= low)
            and (high is None or record.created_at <= high)
        ]

    cases = [
        ({"since": middle.isoformat()}, between(middle, None)),
        ({"until": middle.isoformat()}, between(None, middle)),
        ({"since": middle.isoformat(), "until": later.isoformat()}, between(middle, later)),
        # A time without an offset is read as UTC.
        ({"since": middle.replace(tzinfo=None).isoformat()}, between(middle, None)),
        ({"since": (records[-1].created_at + timedelta(seconds=1)).isoformat()}, []),
    ]
    for params, expected in cases:
        assert len(expected) < len(records)
        assert await walk(client, headers, **params) == expected, params
    assert between(middle, later)
    assert len(between(middle, None)) > len(between(middle, later))


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/audit", {"since": "yesterday"}),
        ("/audit", {"until": "2024-13-45"}),
        ("/audit", {"colour": "red"}),
        ("/audit", {"per_page": 0}),
        ("/audit", {"per_page": 501}),
        ("/audit", {"per_page": "ten"}),
        ("/audit", {"cursor": 0}),
        ("/audit", {"actor_type": "robot"}),
        ("/audit", {"organization_id": "not-a-uuid"}),
        ("/audit", {"action": "x" * 65}),
        ("/audit", {"since": "2024-02-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"}),
        ("/audit/export", {"format": "xml"}),
        ("/audit/export", {"since": "2024-02-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"}),
        ("/audit/export", {"cursor": 5}),
        ("/audit/export", {"colour": "red"}),
        ("/audit/not-a-uuid", {}),
    ],
)
async def test_invalid_queries_are_refused(
    client: httpx.AsyncClient, world: World, path: str, params: dict[str, Any]
) -> None:
    response = await client.get(path, params=params, headers=world["super_admin"].headers)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "body",
    [
        {"from_sequence": 5, "to_sequence": 2},
        {"from_sequence": 0},
        {"to_sequence": -1},
        {"from": 1},
        {"from_sequence": "first"},
    ],
)
async def test_invalid_verify_requests_are_refused(
    client: httpx.AsyncClient, world: World, body: dict[str, Any]
) -> None:
    response = await client.post("/audit/verify", json=body, headers=world["super_admin"].headers)
    assert response.status_code == 422, response.text


async def test_per_page_bounds_are_accepted(client: httpx.AsyncClient, world: World) -> None:
    headers = world["super_admin"].headers
    for per_page in (1, 500):
        response = await client.get("/audit", params={"per_page": per_page}, headers=headers)
        assert response.status_code == 200
        assert response.json()["meta"]["per_page"] == per_page


# --- export ----------------------------------------------------------------------------------


async def test_jsonl_export_matches_the_list_oldest_first(
    client: httpx.AsyncClient, activity: World
) -> None:
    headers = activity["super_admin"].headers
    listed = await walk(client, headers)
    response = await client.get("/audit/export", params={"format": "jsonl"}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert 'filename="audit.jsonl"' in response.headers["content-disposition"]
    assert [json.loads(line) for line in response.text.splitlines()] == listed[::-1]


async def test_csv_export_matches_the_list_oldest_first(
    client: httpx.AsyncClient, activity: World
) -> None:
    headers = activity["super_admin"].headers
    listed = await walk(client, headers)
    response = await client.get("/audit/export", params={"format": "csv"}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="audit.csv"' in response.headers["content-disposition"]
    reader = csv.DictReader(io.StringIO(response.text))
    assert reader.fieldnames == list(AuditRead.model_fields)

    def parsed(row: dict[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {key: value or None for key, value in row.items()}
        values["sequence"] = int(row["sequence"])
        values["details"] = json.loads(row["details"])
        return values

    rows = [parsed(row) for row in reader]
    assert rows == listed[::-1]
    assert any(row["details"].get("values") for row in rows)


async def test_csv_export_of_nothing_is_its_header(client: httpx.AsyncClient, world: World) -> None:
    response = await client.get(
        "/audit/export",
        params={"format": "csv", "action": "no.such.action"},
        headers=world["super_admin"].headers,
    )
    assert response.status_code == 200
    assert response.text.splitlines() == [",".join(AuditRead.model_fields)]


async def test_export_spans_several_batches(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("budapp.audit.service.EXPORT_BATCH", 4)
    records = as_json(await all_records(app))
    assert len(records) > 8
    headers = world["super_admin"].headers
    jsonl = (await client.get("/audit/export", headers=headers)).text
    assert [json.loads(line) for line in jsonl.splitlines()] == records
    csv_text = (await client.get("/audit/export?format=csv", headers=headers)).text
    assert [int(row["sequence"]) for row in csv.DictReader(io.StringIO(csv_text))] == [
        r["sequence"] for r in records
    ]
