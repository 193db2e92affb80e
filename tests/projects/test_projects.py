"""The projects API: listing and visibility, create, read, update and (soft) delete."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.components import components
from budapp.core.references import ReferenceGuard
from budapp.core.roles import ProjectRole
from budapp.projects.models import Project, ProjectMember
from tests.factories import World, create_project
from tests.projects.expected import ALL_PERMISSIONS, DEVELOPER_PERMISSIONS

MAX_SETTINGS_BYTES = 16 * 1024


# --- helpers -------------------------------------------------------------------------------


async def stored(app: FastAPI) -> dict[str, list[dict[str, Any]]]:
    """Every project and membership row as stored, to show a refused write changed nothing."""
    async with components(app).session_factory() as session:
        return {
            table.name: [
                dict(row)
                for row in (await session.execute(select(table).order_by(table.c.id))).mappings()
            ]
            for table in (Project.__table__, ProjectMember.__table__)
        }


async def stored_project(app: FastAPI, project_id: uuid.UUID) -> Project | None:
    async with components(app).session_factory() as session:
        return await session.get(Project, project_id)


async def stored_members(app: FastAPI, project_id: uuid.UUID) -> dict[uuid.UUID, ProjectRole]:
    async with components(app).session_factory() as session:
        rows = await session.scalars(
            select(ProjectMember).where(ProjectMember.project_id == project_id)
        )
        return {row.user_id: row.role for row in rows}


async def enroll(
    app: FastAPI, project_id: uuid.UUID, user_id: uuid.UUID, role: ProjectRole
) -> None:
    async with components(app).session_factory() as session:
        project = await session.get(Project, project_id)
        assert project is not None
        session.add(
            ProjectMember(
                organization_id=project.organization_id,
                project_id=project_id,
                user_id=user_id,
                role=role,
            )
        )
        await session.commit()


def settings_of_size(size: int) -> dict[str, str]:
    """Settings whose JSON serialisation is exactly `size` characters long."""
    value = {"blob": ""}
    value["blob"] = "x" * (size - len(json.dumps(value)))
    assert len(json.dumps(value)) == size
    return value


def names(response: httpx.Response) -> list[str]:
    return [project["name"] for project in response.json()["data"]]


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


@pytest.fixture
def references(app: FastAPI) -> Iterator[ReferenceGuard]:
    """The app's reference guard; checks a test registers are dropped when it ends."""
    guard: ReferenceGuard = components(app).references
    original = guard._checks
    guard._checks = defaultdict(list, {name: list(checks) for name, checks in original.items()})
    yield guard
    guard._checks = original


# --- listing -------------------------------------------------------------------------------


async def test_list_answers_an_envelope_with_page_meta(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/projects", headers=world["user"].headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert body["meta"] == {"total": 1, "page": 1, "per_page": 20}
    [project] = body["data"]
    assert project["id"] == str(world.project_a)
    assert project["organization_id"] == str(world.org_a)
    assert project["name"] == "Project A"
    assert project["settings"] == {}
    assert {"description", "owner_id", "created_at", "updated_at"} <= set(project)


async def test_org_admin_lists_every_project_of_their_organization(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    await create_project(app, world.org_a, "Memberless", {})
    response = await client.get("/projects", headers=world["org_admin"].headers)
    assert sorted(names(response)) == ["Memberless", "Project A"]
    assert response.json()["meta"]["total"] == 2


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        ("user", ["Project A"]),
        ("project_admin", ["Project A"]),
        ("outsider", []),
        ("user_b", ["Project B"]),
    ],
)
async def test_non_admin_lists_only_projects_they_belong_to(
    app: FastAPI, client: httpx.AsyncClient, world: World, account: str, expected: list[str]
) -> None:
    await create_project(
        app, world.org_a, "Someone else's", {world["org_admin"].id: ProjectRole.ADMIN}
    )
    response = await client.get("/projects", headers=world[account].headers)
    assert names(response) == expected
    assert response.json()["meta"]["total"] == len(expected)


async def test_super_admin_lists_projects_of_every_organization(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/projects", headers=world["super_admin"].headers)
    assert sorted(names(response)) == ["Project A", "Project B"]


async def test_organization_filter_narrows_super_admin_listing(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(
        "/projects",
        params={"organization_id": str(world.org_b)},
        headers=world["super_admin"].headers,
    )
    assert names(response) == ["Project B"]


async def test_organization_filter_cannot_reach_another_tenant(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(
        "/projects",
        params={"organization_id": str(world.org_b)},
        headers=world["org_admin"].headers,
    )
    assert response.status_code == 200
    assert response.json() == {"data": [], "meta": {"total": 0, "page": 1, "per_page": 20}}


async def test_list_orders_newest_first(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    for name in ("First", "Second", "Third"):
        await create_project(app, world.org_a, name, {})
    response = await client.get("/projects", headers=world["org_admin"].headers)
    assert names(response) == ["Third", "Second", "First", "Project A"]


async def test_pages_split_the_list_without_overlap(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    for index in range(4):
        await create_project(app, world.org_a, f"Extra {index}", {})
    headers = world["org_admin"].headers
    pages = [
        (await client.get("/projects", params={"page": page, "per_page": 2}, headers=headers))
        for page in (1, 2, 3)
    ]
    assert [len(page.json()["data"]) for page in pages] == [2, 2, 1]
    assert [page.json()["meta"] for page in pages] == [
        {"total": 5, "page": page, "per_page": 2} for page in (1, 2, 3)
    ]
    seen = [project["id"] for page in pages for project in page.json()["data"]]
    assert len(set(seen)) == 5


async def test_page_past_the_end_is_empty_but_counts_the_total(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(
        "/projects", params={"page": 3, "per_page": 10}, headers=world["org_admin"].headers
    )
    assert response.status_code == 200
    assert response.json() == {"data": [], "meta": {"total": 1, "page": 3, "per_page": 10}}


@pytest.mark.parametrize("per_page", [1, 100])
async def test_per_page_accepts_its_bounds(
    app: FastAPI, client: httpx.AsyncClient, world: World, per_page: int
) -> None:
    await create_project(app, world.org_a, "Second", {})
    response = await client.get(
        "/projects", params={"per_page": per_page}, headers=world["org_admin"].headers
    )
    assert response.status_code == 200
    assert len(response.json()["data"]) == min(per_page, 2)
    assert response.json()["meta"] == {"total": 2, "page": 1, "per_page": per_page}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"per_page": 0}, "per_page"),
        ({"per_page": 101}, "per_page"),
        ({"per_page": "ten"}, "per_page"),
        ({"page": 0}, "page"),
        ({"page": -1}, "page"),
        ({"search": "x" * 256}, "search"),
        ({"search": "a\x00b"}, "search"),
        ({"organization_id": "not-a-uuid"}, "organization_id"),
        ({"sort": "name"}, "sort"),
        ({"owner_id": str(uuid.uuid4())}, "owner_id"),
    ],
)
async def test_invalid_list_query_is_422(
    client: httpx.AsyncClient, world: World, params: dict[str, Any], field: str
) -> None:
    response = await client.get("/projects", params=params, headers=world["org_admin"].headers)
    assert response.status_code == 422
    assert error_code(response) == "VALIDATION_ERROR"
    assert [detail["field"] for detail in response.json()["error"]["details"]] == [field]


async def test_search_matches_part_of_the_name_ignoring_case(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    for name in ("Alpha One", "second ALPHA", "Beta"):
        await create_project(app, world.org_a, name, {})
    response = await client.get(
        "/projects", params={"search": "alpha"}, headers=world["org_admin"].headers
    )
    assert sorted(names(response)) == ["Alpha One", "second ALPHA"]
    assert response.json()["meta"]["total"] == 2


@pytest.mark.parametrize(("term", "expected"), [("100%", ["100% done"]), ("a_b", ["a_b"])])
async def test_search_treats_wildcards_literally(
    app: FastAPI, client: httpx.AsyncClient, world: World, term: str, expected: list[str]
) -> None:
    for name in ("100% done", "1000 done", "a_b", "axb"):
        await create_project(app, world.org_a, name, {})
    response = await client.get(
        "/projects", params={"search": term}, headers=world["org_admin"].headers
    )
    assert names(response) == expected


async def test_search_applies_within_visibility(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    await create_project(app, world.org_a, "Project Hidden", {})
    response = await client.get(
        "/projects", params={"search": "project"}, headers=world["user"].headers
    )
    assert names(response) == ["Project A"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/projects"),
        ("POST", "/projects"),
        ("GET", "/projects/{project}"),
        ("PUT", "/projects/{project}"),
        ("DELETE", "/projects/{project}"),
        ("GET", "/projects/{project}/members"),
        ("POST", "/projects/{project}/members"),
        ("PUT", "/projects/{project}/members/{user}"),
        ("DELETE", "/projects/{project}/members/{user}"),
    ],
)
async def test_every_route_requires_authentication(
    app: FastAPI, client: httpx.AsyncClient, world: World, method: str, path: str
) -> None:
    before = await stored(app)
    url = path.format(project=world.project_a, user=world["user"].id)
    response = await client.request(method, url, json={"name": "Anonymous"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert await stored(app) == before


# --- create --------------------------------------------------------------------------------


async def test_project_admin_creates_a_project(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    creator = world["project_admin"]
    response = await client.post(
        "/projects",
        json={"name": "Vision", "description": "Image models", "settings": {"gpu": "a100"}},
        headers=creator.headers,
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["name"] == "Vision"
    assert data["description"] == "Image models"
    assert data["settings"] == {"gpu": "a100"}
    assert data["organization_id"] == str(world.org_a)
    assert data["owner_id"] == str(creator.id)
    project = await stored_project(app, uuid.UUID(data["id"]))
    assert project is not None
    assert (project.name, project.settings, project.deleted_at) == ("Vision", {"gpu": "a100"}, None)


@pytest.mark.parametrize("account", ["project_admin", "org_admin", "super_admin"])
async def test_creator_becomes_the_projects_admin_member(
    app: FastAPI, client: httpx.AsyncClient, world: World, account: str
) -> None:
    creator = world[account]
    response = await client.post("/projects", json={"name": "Mine"}, headers=creator.headers)
    assert response.status_code == 201
    project_id = uuid.UUID(response.json()["data"]["id"])
    assert await stored_members(app, project_id) == {creator.id: ProjectRole.ADMIN}


async def test_creator_sees_the_new_project_in_their_list(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = world["project_admin"].headers
    await client.post("/projects", json={"name": "Fresh"}, headers=headers)
    response = await client.get("/projects", headers=headers)
    assert sorted(names(response)) == ["Fresh", "Project A"]


async def test_plain_user_cannot_create_a_project(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    before = await stored(app)
    response = await client.post(
        "/projects", json={"name": "Not allowed"}, headers=world["user"].headers
    )
    assert response.status_code == 403
    assert error_code(response) == "FORBIDDEN"
    assert await stored(app) == before


@pytest.mark.parametrize("name", ["Project A", "  Project A  "])
async def test_duplicate_name_in_the_same_organization_is_409(
    app: FastAPI, client: httpx.AsyncClient, world: World, name: str
) -> None:
    before = await stored(app)
    response = await client.post(
        "/projects", json={"name": name}, headers=world["org_admin"].headers
    )
    assert response.status_code == 409
    assert error_code(response) == "CONFLICT"
    assert await stored(app) == before


async def test_concurrent_creates_of_one_name_store_one_project(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    responses = await asyncio.gather(
        *(client.post("/projects", json={"name": "Raced"}, headers=headers) for _ in range(4))
    )
    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409]
    listing = await client.get("/projects", params={"search": "Raced"}, headers=headers)
    assert listing.json()["meta"]["total"] == 1


async def test_same_name_is_allowed_in_another_organization(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        "/projects", json={"name": "Project A"}, headers=world["org_admin_b"].headers
    )
    assert response.status_code == 201
    assert response.json()["data"]["organization_id"] == str(world.org_b)


async def test_name_of_a_deleted_project_can_be_reused(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    assert (await client.delete(f"/projects/{world.project_a}", headers=headers)).status_code == 204
    response = await client.post("/projects", json={"name": "Project A"}, headers=headers)
    assert response.status_code == 201
    assert response.json()["data"]["id"] != str(world.project_a)
    old = await stored_project(app, world.project_a)
    assert old is not None
    assert old.deleted_at is not None


async def test_name_is_stored_without_surrounding_whitespace(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        "/projects", json={"name": "  Padded  "}, headers=world["org_admin"].headers
    )
    assert response.status_code == 201
    assert response.json()["data"]["name"] == "Padded"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x" * 255},
        {"name": "Long description", "description": "d" * 2000},
        {"name": "Big settings", "settings": settings_of_size(MAX_SETTINGS_BYTES)},
    ],
    ids=["name-255", "description-2000", "settings-16KiB"],
)
async def test_create_accepts_values_at_their_limits(
    client: httpx.AsyncClient, world: World, body: dict[str, Any]
) -> None:
    response = await client.post("/projects", json=body, headers=world["org_admin"].headers)
    assert response.status_code == 201
    data = response.json()["data"]
    assert {key: data[key] for key in body} == body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": None}, "name"),
        ({"name": 123}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": "ok", "description": "d" * 2001}, "description"),
        ({"name": "ok", "description": 5}, "description"),
        ({"name": "ok", "settings": ["a"]}, "settings"),
        ({"name": "ok", "settings": "a"}, "settings"),
        ({"name": "ok", "settings": settings_of_size(MAX_SETTINGS_BYTES + 1)}, "settings"),
        ({"name": "ok", "organization_id": "not-a-uuid"}, "organization_id"),
        ({"name": "ok", "owner_id": str(uuid.uuid4())}, "owner_id"),
        ({"name": "ok", "deleted_at": "2020-01-01T00:00:00Z"}, "deleted_at"),
        ({"name": "nul\u0000byte"}, "name"),
        ({"name": "ok", "description": "nul\u0000byte"}, "description"),
        (["name", "ok"], "body"),
    ],
)
async def test_invalid_create_body_is_422(
    app: FastAPI, client: httpx.AsyncClient, world: World, body: Any, field: str
) -> None:
    before = await stored(app)
    response = await client.post("/projects", json=body, headers=world["org_admin"].headers)
    assert response.status_code == 422
    assert error_code(response) == "VALIDATION_ERROR"
    assert [detail["field"] for detail in response.json()["error"]["details"]] == [field]
    assert await stored(app) == before


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity"])
async def test_settings_with_a_non_finite_number_are_422(
    app: FastAPI, client: httpx.AsyncClient, world: World, number: bytes
) -> None:
    before = await stored(app)
    response = await client.post(
        "/projects",
        content=b'{"name": "Odd", "settings": {"ratio": ' + number + b"}}",
        headers={**world["org_admin"].headers, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert [detail["field"] for detail in response.json()["error"]["details"]] == ["settings"]
    assert await stored(app) == before


@pytest.mark.parametrize("content", [b'{"name": ', b"name=x", b""])
async def test_malformed_json_body_is_422(
    app: FastAPI, client: httpx.AsyncClient, world: World, content: bytes
) -> None:
    before = await stored(app)
    response = await client.post(
        "/projects",
        content=content,
        headers={**world["org_admin"].headers, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert error_code(response) == "VALIDATION_ERROR"
    assert await stored(app) == before


@pytest.mark.parametrize("account", ["project_admin", "org_admin"])
async def test_creating_in_another_organization_is_404(
    app: FastAPI, client: httpx.AsyncClient, world: World, account: str
) -> None:
    before = await stored(app)
    response = await client.post(
        "/projects",
        json={"name": "Planted", "organization_id": str(world.org_b)},
        headers=world[account].headers,
    )
    assert response.status_code == 404
    assert error_code(response) == "NOT_FOUND"
    assert await stored(app) == before


async def test_super_admin_creates_in_another_organization_without_joining_it(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        "/projects",
        json={"name": "For B", "organization_id": str(world.org_b)},
        headers=world["super_admin"].headers,
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["organization_id"] == str(world.org_b)
    assert await stored_members(app, uuid.UUID(data["id"])) == {}
    listing = await client.get("/projects", headers=world["org_admin_b"].headers)
    assert sorted(names(listing)) == ["For B", "Project B"]


# --- read ----------------------------------------------------------------------------------


@pytest.mark.parametrize("account", ["user", "project_admin", "org_admin", "super_admin"])
async def test_project_is_readable_by_members_and_admins(
    client: httpx.AsyncClient, world: World, account: str
) -> None:
    response = await client.get(f"/projects/{world.project_a}", headers=world[account].headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert body["data"]["id"] == str(world.project_a)
    assert body["data"]["name"] == "Project A"


async def test_viewer_member_can_read_the_project(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    await enroll(app, world.project_a, world["outsider"].id, ProjectRole.VIEWER)
    response = await client.get(f"/projects/{world.project_a}", headers=world["outsider"].headers)
    assert response.status_code == 200
    assert response.json()["data"]["id"] == str(world.project_a)


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", None), ("PUT", {"name": "Taken over"}), ("DELETE", None)],
)
@pytest.mark.parametrize("account", ["org_admin", "project_admin", "user", "outsider"])
async def test_project_of_another_organization_is_404(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    method: str,
    body: dict[str, str] | None,
    account: str,
) -> None:
    before = await stored(app)
    response = await client.request(
        method, f"/projects/{world.project_b}", json=body, headers=world[account].headers
    )
    assert response.status_code == 404
    assert error_code(response) == "NOT_FOUND"
    assert await stored(app) == before


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", None), ("PUT", {"name": "Taken over"}), ("DELETE", None)],
)
async def test_project_is_404_to_a_non_member_of_the_same_organization(
    app: FastAPI, client: httpx.AsyncClient, world: World, method: str, body: dict[str, str] | None
) -> None:
    before = await stored(app)
    response = await client.request(
        method, f"/projects/{world.project_a}", json=body, headers=world["outsider"].headers
    )
    assert response.status_code == 404
    assert error_code(response) == "NOT_FOUND"
    assert await stored(app) == before


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_unknown_project_is_404(client: httpx.AsyncClient, world: World, method: str) -> None:
    response = await client.request(
        method, f"/projects/{uuid.uuid4()}", json={}, headers=world["super_admin"].headers
    )
    assert response.status_code == 404


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize(
    "project_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"]
)
async def test_invalid_project_id_in_path_is_422(
    app: FastAPI, client: httpx.AsyncClient, world: World, method: str, project_id: str
) -> None:
    before = await stored(app)
    response = await client.request(
        method, f"/projects/{project_id}", json={}, headers=world["org_admin"].headers
    )
    assert response.status_code == 422
    [detail] = response.json()["error"]["details"]
    assert (detail["in"], detail["field"]) == ("path", "project_id")
    assert await stored(app) == before


async def test_super_admin_reads_a_project_of_another_organization(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(
        f"/projects/{world.project_b}", headers=world["super_admin"].headers
    )
    assert response.status_code == 200
    assert response.json()["data"]["organization_id"] == str(world.org_b)


# --- update --------------------------------------------------------------------------------


@pytest.mark.parametrize("account", ["project_admin", "org_admin", "super_admin"])
async def test_project_admin_member_or_org_admin_updates_the_project(
    app: FastAPI, client: httpx.AsyncClient, world: World, account: str
) -> None:
    response = await client.put(
        f"/projects/{world.project_a}",
        json={"name": "Renamed", "description": "Now described", "settings": {"a": 1}},
        headers=world[account].headers,
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["name"], data["description"], data["settings"]) == (
        "Renamed",
        "Now described",
        {"a": 1},
    )
    project = await stored_project(app, world.project_a)
    assert project is not None
    assert (project.name, project.description, project.settings) == (
        "Renamed",
        "Now described",
        {"a": 1},
    )


async def test_update_leaves_omitted_fields_unchanged(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    url = f"/projects/{world.project_a}"
    await client.put(url, json={"description": "Kept", "settings": {"k": "v"}}, headers=headers)
    response = await client.put(url, json={"name": "Only the name"}, headers=headers)
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["name"], data["description"], data["settings"]) == (
        "Only the name",
        "Kept",
        {"k": "v"},
    )


async def test_update_with_null_description_clears_it(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    url = f"/projects/{world.project_a}"
    await client.put(url, json={"description": "Temporary"}, headers=headers)
    response = await client.put(url, json={"description": None}, headers=headers)
    assert response.json()["data"]["description"] is None
    project = await stored_project(app, world.project_a)
    assert project is not None
    assert project.description is None


@pytest.mark.parametrize("field", ["name", "settings"])
async def test_update_with_null_name_or_settings_is_422_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, world: World, field: str
) -> None:
    before = await stored_project(app, world.project_a)
    response = await client.put(
        f"/projects/{world.project_a}",
        json={field: None, "description": "Not applied"},
        headers=world["org_admin"].headers,
    )
    assert response.status_code == 422
    assert field in response.text
    after = await stored_project(app, world.project_a)
    assert after is not None
    assert before is not None
    assert (after.name, after.description, after.settings) == (
        before.name,
        before.description,
        before.settings,
    )


async def test_update_keeping_its_own_name_is_allowed(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.put(
        f"/projects/{world.project_a}",
        json={"name": "Project A", "description": "Same name"},
        headers=world["org_admin"].headers,
    )
    assert response.status_code == 200
    assert response.json()["data"]["description"] == "Same name"


async def test_renaming_to_a_taken_name_is_409(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    await create_project(app, world.org_a, "Taken", {})
    before = await stored(app)
    response = await client.put(
        f"/projects/{world.project_a}", json={"name": "Taken"}, headers=world["org_admin"].headers
    )
    assert response.status_code == 409
    assert error_code(response) == "CONFLICT"
    assert await stored(app) == before


async def test_renaming_to_a_name_used_in_another_organization_is_allowed(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.put(
        f"/projects/{world.project_a}",
        json={"name": "Project B"},
        headers=world["org_admin"].headers,
    )
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "Project B"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"description": "d" * 2001}, "description"),
        ({"settings": "a"}, "settings"),
        ({"settings": settings_of_size(MAX_SETTINGS_BYTES + 1)}, "settings"),
        ({"organization_id": str(uuid.uuid4())}, "organization_id"),
        ({"owner_id": str(uuid.uuid4())}, "owner_id"),
    ],
)
async def test_invalid_update_body_is_422(
    app: FastAPI, client: httpx.AsyncClient, world: World, body: dict[str, Any], field: str
) -> None:
    before = await stored(app)
    response = await client.put(
        f"/projects/{world.project_a}", json=body, headers=world["org_admin"].headers
    )
    assert response.status_code == 422
    assert [detail["field"] for detail in response.json()["error"]["details"]] == [field]
    assert await stored(app) == before


@pytest.mark.parametrize(
    ("method", "body"), [("PUT", {"name": "Viewer's rename"}), ("DELETE", None)]
)
@pytest.mark.parametrize("role", [ProjectRole.VIEWER, ProjectRole.DEVELOPER])
async def test_viewer_or_developer_cannot_change_the_project(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    method: str,
    body: dict[str, str] | None,
    role: ProjectRole,
) -> None:
    await enroll(app, world.project_a, world["outsider"].id, role)
    before = await stored(app)
    response = await client.request(
        method, f"/projects/{world.project_a}", json=body, headers=world["outsider"].headers
    )
    assert response.status_code == 403
    assert error_code(response) == "FORBIDDEN"
    assert await stored(app) == before


# --- delete --------------------------------------------------------------------------------


async def test_deleting_a_project_soft_deletes_it(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    response = await client.delete(
        f"/projects/{world.project_a}", headers=world["project_admin"].headers
    )
    assert response.status_code == 204
    assert response.content == b""
    project = await stored_project(app, world.project_a)
    assert project is not None
    assert project.deleted_at is not None


@pytest.mark.parametrize("account", ["project_admin", "user", "org_admin", "super_admin"])
async def test_deleted_project_is_gone_from_reads_and_lists(
    client: httpx.AsyncClient, world: World, account: str
) -> None:
    await client.delete(f"/projects/{world.project_a}", headers=world["org_admin"].headers)
    headers = world[account].headers
    assert (await client.get(f"/projects/{world.project_a}", headers=headers)).status_code == 404
    listing = await client.get("/projects", headers=headers)
    assert str(world.project_a) not in [project["id"] for project in listing.json()["data"]]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/projects/{project}", {"name": "Revived"}),
        ("DELETE", "/projects/{project}", None),
        ("GET", "/projects/{project}/members", None),
        ("POST", "/projects/{project}/members", {"user_id": "{outsider}"}),
        ("PUT", "/projects/{project}/members/{user}", {"role": "viewer"}),
        ("DELETE", "/projects/{project}/members/{user}", None),
    ],
)
async def test_deleted_project_cannot_be_changed(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    headers = world["org_admin"].headers
    await client.delete(f"/projects/{world.project_a}", headers=headers)
    before = await stored(app)
    url = path.format(project=world.project_a, user=world["user"].id)
    if body is not None:
        body = {key: value.format(outsider=world["outsider"].id) for key, value in body.items()}
    response = await client.request(method, url, json=body, headers=headers)
    assert response.status_code == 404
    assert await stored(app) == before


async def test_referenced_project_cannot_be_deleted(
    app: FastAPI, client: httpx.AsyncClient, world: World, references: ReferenceGuard
) -> None:
    async def endpoints_of(_: AsyncSession, project_id: uuid.UUID) -> str | None:
        return "2 endpoint(s)" if project_id == world.project_a else None

    references.register("project", endpoints_of)
    before = await stored(app)
    response = await client.delete(
        f"/projects/{world.project_a}", headers=world["org_admin"].headers
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "CONFLICT"
    assert "2 endpoint(s)" in error["message"]
    assert error["details"] == [{"reference": "2 endpoint(s)"}]
    assert await stored(app) == before
    still_there = await client.get(
        f"/projects/{world.project_a}", headers=world["org_admin"].headers
    )
    assert still_there.status_code == 200


async def test_reference_check_applies_only_to_the_project_it_reports(
    client: httpx.AsyncClient, world: World, references: ReferenceGuard
) -> None:
    async def endpoints_of(_: AsyncSession, project_id: uuid.UUID) -> str | None:
        return "1 endpoint(s)" if project_id == world.project_a else None

    references.register("project", endpoints_of)
    response = await client.delete(
        f"/projects/{world.project_b}", headers=world["org_admin_b"].headers
    )
    assert response.status_code == 204


# --- /auth/me ------------------------------------------------------------------------------


async def test_me_lists_the_callers_project_memberships(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    user = world["user"]
    other = await create_project(app, world.org_a, "Another", {user.id: ProjectRole.ADMIN})
    response = await client.get("/auth/me", headers=user.headers)
    assert response.status_code == 200
    assert response.json()["data"]["projects"] == [
        {
            "project_id": str(other),
            "project_name": "Another",
            "role": "admin",
            "permissions": ALL_PERMISSIONS,
        },
        {
            "project_id": str(world.project_a),
            "project_name": "Project A",
            "role": "developer",
            "permissions": DEVELOPER_PERMISSIONS,
        },
    ]


@pytest.mark.parametrize("account", ["outsider", "org_admin"])
async def test_me_lists_no_projects_for_a_non_member(
    client: httpx.AsyncClient, world: World, account: str
) -> None:
    response = await client.get("/auth/me", headers=world[account].headers)
    assert response.json()["data"]["projects"] == []


async def test_me_omits_deleted_projects(client: httpx.AsyncClient, world: World) -> None:
    await client.delete(f"/projects/{world.project_a}", headers=world["org_admin"].headers)
    response = await client.get("/auth/me", headers=world["user"].headers)
    assert response.json()["data"]["projects"] == []
