"""The /organizations routes through the ASGI app: envelopes, validation, tenancy and the
rules on renaming and deleting a tenant."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from budapp.core.roles import Role
from tests.factories import World, create_account, create_organization, create_project

ORGANIZATION_FIELDS = {"id", "name", "description", "created_at", "updated_at"}


async def stored_organizations(client: httpx.AsyncClient, world: World) -> list[dict[str, Any]]:
    """Every live organization, as the super admin sees them."""
    response = await client.get(
        "/organizations", params={"per_page": 100}, headers=world["super_admin"].headers
    )
    assert response.status_code == 200, response.text
    organizations: list[dict[str, Any]] = response.json()["data"]
    return organizations


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    return error


def same_message(a: dict[str, Any], a_id: object, b: dict[str, Any], b_id: object) -> bool:
    """Whether two errors read alike once the ids they name are masked."""
    return bool(a["message"].replace(str(a_id), "?") == b["message"].replace(str(b_id), "?"))


# --- GET /organizations --------------------------------------------------------------------


async def test_super_admin_lists_every_organization(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/organizations", headers=world["super_admin"].headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert body["meta"] == {"total": 2, "page": 1, "per_page": 20}
    assert [organization["name"] for organization in body["data"]] == ["Org A", "Org B"]
    assert [organization["id"] for organization in body["data"]] == [
        str(world.org_a),
        str(world.org_b),
    ]
    assert set(body["data"][0]) == ORGANIZATION_FIELDS


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        ("org_admin", "Org A"),
        ("project_admin", "Org A"),
        ("user", "Org A"),
        ("org_admin_b", "Org B"),
        ("user_b", "Org B"),
    ],
)
async def test_others_list_only_their_own_organization(
    client: httpx.AsyncClient, world: World, account: str, expected: str
) -> None:
    response = await client.get("/organizations", headers=world[account].headers)
    assert response.status_code == 200
    body = response.json()
    assert [organization["name"] for organization in body["data"]] == [expected]
    assert body["meta"] == {"total": 1, "page": 1, "per_page": 20}


async def test_list_organizations_paginates(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    for name in ("Org C", "Org D", "Org E"):
        await create_organization(app, name)
    headers = world["super_admin"].headers
    response = await client.get(
        "/organizations", params={"page": 2, "per_page": 2}, headers=headers
    )
    assert response.status_code == 200
    assert response.json()["meta"] == {"total": 5, "page": 2, "per_page": 2}
    assert [organization["name"] for organization in response.json()["data"]] == ["Org C", "Org D"]
    past_the_end = await client.get(
        "/organizations", params={"page": 4, "per_page": 2}, headers=headers
    )
    assert past_the_end.json() == {"data": [], "meta": {"total": 5, "page": 4, "per_page": 2}}


@pytest.mark.parametrize(
    "params",
    [
        {"page": "0"},
        {"page": "-1"},
        {"per_page": "0"},
        {"per_page": "101"},
        {"per_page": "ten"},
        {"name": "Org A"},
    ],
)
async def test_list_organizations_rejects_invalid_query(
    client: httpx.AsyncClient, world: World, params: dict[str, str]
) -> None:
    response = await client.get(
        "/organizations", params=params, headers=world["super_admin"].headers
    )
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"][0]["field"] == next(iter(params))


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer forged.token.value"}, {"Authorization": "Bearer"}]
)
async def test_list_organizations_requires_authentication(
    client: httpx.AsyncClient, world: World, headers: dict[str, str]
) -> None:
    assert_error(await client.get("/organizations", headers=headers), 401, "UNAUTHORIZED")


# --- POST /organizations -------------------------------------------------------------------


async def test_create_organization_returns_the_new_organization(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        "/organizations",
        json={"name": "  Org C  ", "description": "The third tenant"},
        headers=world["super_admin"].headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert body["meta"] == {}
    created = body["data"]
    assert set(created) == ORGANIZATION_FIELDS
    assert created["name"] == "Org C"
    assert created["description"] == "The third tenant"
    assert created in await stored_organizations(client, world)
    fetched = await client.get(
        f"/organizations/{created['id']}", headers=world["super_admin"].headers
    )
    assert fetched.json()["data"] == created


async def test_create_organization_without_description(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        "/organizations", json={"name": "Org C"}, headers=world["super_admin"].headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["description"] is None


@pytest.mark.parametrize("account", ["org_admin", "project_admin", "user", "org_admin_b"])
async def test_create_organization_requires_super_admin(
    client: httpx.AsyncClient, world: World, account: str
) -> None:
    before = await stored_organizations(client, world)
    response = await client.post(
        "/organizations", json={"name": "Org C"}, headers=world[account].headers
    )
    assert_error(response, 403, "FORBIDDEN")
    assert await stored_organizations(client, world) == before


async def test_create_organization_requires_authentication(
    client: httpx.AsyncClient, world: World
) -> None:
    before = await stored_organizations(client, world)
    assert_error(await client.post("/organizations", json={"name": "Org C"}), 401, "UNAUTHORIZED")
    assert await stored_organizations(client, world) == before


@pytest.mark.parametrize("name", ["Org B", "  Org B ", "Org A"])
async def test_create_organization_rejects_duplicate_name(
    client: httpx.AsyncClient, world: World, name: str
) -> None:
    before = await stored_organizations(client, world)
    response = await client.post(
        "/organizations", json={"name": name}, headers=world["super_admin"].headers
    )
    assert_error(response, 409, "CONFLICT")
    assert await stored_organizations(client, world) == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="missing-name"),
        pytest.param({"name": ""}, id="name-empty"),
        pytest.param({"name": "   "}, id="name-blank"),
        pytest.param({"name": None}, id="name-null"),
        pytest.param({"name": "n" * 256}, id="name-too-long"),
        pytest.param({"name": 42}, id="name-number"),
        pytest.param({"name": ["Org C"]}, id="name-list"),
        pytest.param({"name": {"text": "Org C"}}, id="name-object"),
        pytest.param({"name": "Org C", "description": "d" * 2001}, id="description-too-long"),
        pytest.param({"name": "Org C", "description": 7}, id="description-number"),
        pytest.param({"name": "Org C", "slug": "org-c"}, id="unknown-field"),
        pytest.param({"name": "Org C", "id": str(uuid.uuid4())}, id="id-field"),
        pytest.param(["Org C"], id="array-body"),
        pytest.param("Org C", id="string-body"),
    ],
)
async def test_create_organization_rejects_invalid_body(
    client: httpx.AsyncClient, world: World, body: Any
) -> None:
    before = await stored_organizations(client, world)
    response = await client.post("/organizations", json=body, headers=world["super_admin"].headers)
    assert_error(response, 422, "VALIDATION_ERROR")
    assert await stored_organizations(client, world) == before


async def test_create_organization_accepts_longest_name(
    client: httpx.AsyncClient, world: World
) -> None:
    name = "n" * 255
    response = await client.post(
        "/organizations", json={"name": name}, headers=world["super_admin"].headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["name"] == name


@pytest.mark.parametrize("content", [b'{"name": ', b"", b"{name: 'Org C'}", b"\xff\xfe"])
async def test_create_organization_rejects_malformed_json(
    client: httpx.AsyncClient, world: World, content: bytes
) -> None:
    before = await stored_organizations(client, world)
    response = await client.post(
        "/organizations",
        content=content,
        headers={**world["super_admin"].headers, "content-type": "application/json"},
    )
    assert_error(response, 422, "VALIDATION_ERROR")
    assert await stored_organizations(client, world) == before


async def test_create_organization_reuses_name_of_deleted_organization(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = world["super_admin"].headers
    first = await client.post("/organizations", json={"name": "Org C"}, headers=headers)
    first_id = first.json()["data"]["id"]
    assert (await client.delete(f"/organizations/{first_id}", headers=headers)).status_code == 204
    second = await client.post("/organizations", json={"name": "Org C"}, headers=headers)
    assert second.status_code == 201, second.text
    assert second.json()["data"]["id"] != first_id


# --- GET /organizations/{id} ---------------------------------------------------------------


@pytest.mark.parametrize("account", ["super_admin", "org_admin", "user", "outsider"])
async def test_get_organization_returns_own_organization(
    client: httpx.AsyncClient, world: World, account: str
) -> None:
    response = await client.get(f"/organizations/{world.org_a}", headers=world[account].headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert body["data"]["id"] == str(world.org_a)
    assert body["data"]["name"] == "Org A"
    assert set(body["data"]) == ORGANIZATION_FIELDS


async def test_super_admin_gets_any_organization(client: httpx.AsyncClient, world: World) -> None:
    response = await client.get(
        f"/organizations/{world.org_b}", headers=world["super_admin"].headers
    )
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "Org B"


@pytest.mark.parametrize(
    ("account", "organization"),
    [("org_admin_b", "org_a"), ("user_b", "org_a"), ("org_admin", "org_b"), ("user", "org_b")],
)
async def test_get_foreign_organization_is_not_found(
    client: httpx.AsyncClient, world: World, account: str, organization: str
) -> None:
    headers = world[account].headers
    foreign_id = getattr(world, organization)
    unknown_id = uuid.uuid4()
    foreign = assert_error(
        await client.get(f"/organizations/{foreign_id}", headers=headers), 404, "NOT_FOUND"
    )
    unknown = assert_error(
        await client.get(f"/organizations/{unknown_id}", headers=headers), 404, "NOT_FOUND"
    )
    assert same_message(foreign, foreign_id, unknown, unknown_id)


async def test_get_unknown_organization_is_not_found(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(
        f"/organizations/{uuid.uuid4()}", headers=world["super_admin"].headers
    )
    assert_error(response, 404, "NOT_FOUND")


async def test_get_organization_requires_authentication(
    client: httpx.AsyncClient, world: World
) -> None:
    assert_error(await client.get(f"/organizations/{world.org_a}"), 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/organizations/not-a-uuid", None),
        ("GET", "/organizations/1", None),
        ("PUT", "/organizations/not-a-uuid", {"name": "X"}),
        ("DELETE", "/organizations/not-a-uuid", None),
        ("DELETE", f"/organizations/{uuid.uuid4().hex[:-1]}", None),
    ],
)
async def test_organization_routes_reject_invalid_uuid_in_path(
    client: httpx.AsyncClient, world: World, method: str, path: str, body: Any
) -> None:
    before = await stored_organizations(client, world)
    response = await client.request(method, path, json=body, headers=world["super_admin"].headers)
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"][0] == {
        "field": "organization_id",
        "in": "path",
        "message": error["details"][0]["message"],
        "type": "uuid_parsing",
    }
    assert await stored_organizations(client, world) == before


# --- PUT /organizations/{id} ---------------------------------------------------------------


async def test_org_admin_updates_own_organization(client: httpx.AsyncClient, world: World) -> None:
    response = await client.put(
        f"/organizations/{world.org_a}",
        json={"name": "Org A Renamed", "description": "Now described"},
        headers=world["org_admin"].headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert body["data"]["name"] == "Org A Renamed"
    assert body["data"]["description"] == "Now described"
    stored = {o["id"]: o for o in await stored_organizations(client, world)}
    assert stored[str(world.org_a)] == body["data"]


async def test_super_admin_updates_another_organization(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.put(
        f"/organizations/{world.org_b}",
        json={"description": "Set by the operator"},
        headers=world["super_admin"].headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["name"] == "Org B"
    assert response.json()["data"]["description"] == "Set by the operator"


async def test_update_organization_keeps_its_own_name(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.put(
        f"/organizations/{world.org_a}",
        json={"name": " Org A "},
        headers=world["org_admin"].headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["name"] == "Org A"


async def test_update_organization_clears_description_with_null(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    path = f"/organizations/{world.org_a}"
    assert (await client.put(path, json={"description": "Temporary"}, headers=headers)).is_success
    response = await client.put(path, json={"description": None}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["description"] is None
    assert response.json()["data"]["name"] == "Org A"


async def test_update_organization_ignores_null_name(
    client: httpx.AsyncClient, world: World
) -> None:
    before = await stored_organizations(client, world)
    response = await client.put(
        f"/organizations/{world.org_a}", json={"name": None}, headers=world["org_admin"].headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["name"] == "Org A"
    assert [o["name"] for o in await stored_organizations(client, world)] == [
        o["name"] for o in before
    ]


@pytest.mark.parametrize("name", ["Org B", "  Org B  "])
async def test_update_organization_rejects_duplicate_name(
    client: httpx.AsyncClient, world: World, name: str
) -> None:
    before = await stored_organizations(client, world)
    response = await client.put(
        f"/organizations/{world.org_a}",
        json={"name": name, "description": "Would change"},
        headers=world["org_admin"].headers,
    )
    assert_error(response, 409, "CONFLICT")
    assert await stored_organizations(client, world) == before


@pytest.mark.parametrize("account", ["project_admin", "user", "outsider"])
async def test_update_organization_requires_org_admin(
    client: httpx.AsyncClient, world: World, account: str
) -> None:
    before = await stored_organizations(client, world)
    response = await client.put(
        f"/organizations/{world.org_a}", json={"name": "Taken Over"}, headers=world[account].headers
    )
    assert_error(response, 403, "FORBIDDEN")
    assert await stored_organizations(client, world) == before


@pytest.mark.parametrize(
    ("account", "organization"),
    [("org_admin_b", "org_a"), ("user_b", "org_a"), ("org_admin", "org_b"), ("user", "org_b")],
)
async def test_update_foreign_organization_is_not_found(
    client: httpx.AsyncClient, world: World, account: str, organization: str
) -> None:
    before = await stored_organizations(client, world)
    headers = world[account].headers
    foreign_id = getattr(world, organization)
    unknown_id = uuid.uuid4()
    body = {"name": "Taken Over"}
    foreign = assert_error(
        await client.put(f"/organizations/{foreign_id}", json=body, headers=headers),
        404,
        "NOT_FOUND",
    )
    unknown = assert_error(
        await client.put(f"/organizations/{unknown_id}", json=body, headers=headers),
        404,
        "NOT_FOUND",
    )
    assert same_message(foreign, foreign_id, unknown, unknown_id)
    assert await stored_organizations(client, world) == before


async def test_update_deleted_organization_is_not_found(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    headers = world["super_admin"].headers
    organization_id = await create_organization(app, "Org C")
    assert (await client.delete(f"/organizations/{organization_id}", headers=headers)).is_success
    before = await stored_organizations(client, world)
    response = await client.put(
        f"/organizations/{organization_id}", json={"name": "Revived"}, headers=headers
    )
    assert_error(response, 404, "NOT_FOUND")
    assert await stored_organizations(client, world) == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": ""}, id="name-empty"),
        pytest.param({"name": "   "}, id="name-blank"),
        pytest.param({"name": "n" * 256}, id="name-too-long"),
        pytest.param({"name": 1}, id="name-number"),
        pytest.param({"name": True}, id="name-bool"),
        pytest.param({"description": "d" * 2001}, id="description-too-long"),
        pytest.param({"description": ["x"]}, id="description-list"),
        pytest.param({"name": "Org Z", "owner": "me"}, id="unknown-field"),
        pytest.param({"deleted_at": None}, id="deleted-at-field"),
        pytest.param([], id="array-body"),
    ],
)
async def test_update_organization_rejects_invalid_body(
    client: httpx.AsyncClient, world: World, body: Any
) -> None:
    before = await stored_organizations(client, world)
    response = await client.put(
        f"/organizations/{world.org_a}", json=body, headers=world["org_admin"].headers
    )
    assert_error(response, 422, "VALIDATION_ERROR")
    assert await stored_organizations(client, world) == before


async def test_update_organization_rejects_malformed_json(
    client: httpx.AsyncClient, world: World
) -> None:
    before = await stored_organizations(client, world)
    response = await client.put(
        f"/organizations/{world.org_a}",
        content=b'{"name": "Org Z"',
        headers={**world["org_admin"].headers, "content-type": "application/json"},
    )
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"][0]["type"] == "json_invalid"
    assert await stored_organizations(client, world) == before


# --- DELETE /organizations/{id} ------------------------------------------------------------


async def test_delete_empty_organization_hides_it(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    headers = world["super_admin"].headers
    organization_id = await create_organization(app, "Org C")
    response = await client.delete(f"/organizations/{organization_id}", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_error(
        await client.get(f"/organizations/{organization_id}", headers=headers), 404, "NOT_FOUND"
    )
    assert [o["name"] for o in await stored_organizations(client, world)] == ["Org A", "Org B"]
    assert_error(
        await client.delete(f"/organizations/{organization_id}", headers=headers),
        404,
        "NOT_FOUND",
    )


async def test_delete_organization_with_users_is_conflict(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    organization_id = await create_organization(app, "Org C")
    await create_account(app, organization_id, "member@example.com", Role.USER)
    before = await stored_organizations(client, world)
    response = await client.delete(
        f"/organizations/{organization_id}", headers=world["super_admin"].headers
    )
    error = assert_error(response, 409, "CONFLICT")
    assert error["details"] == [{"reference": "1 user(s)"}]
    assert await stored_organizations(client, world) == before


async def test_delete_organization_with_projects_is_conflict(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    organization_id = await create_organization(app, "Org C")
    await create_project(app, organization_id, "Orphan project", {})
    before = await stored_organizations(client, world)
    response = await client.delete(
        f"/organizations/{organization_id}", headers=world["super_admin"].headers
    )
    error = assert_error(response, 409, "CONFLICT")
    assert error["details"] == [{"reference": "1 project(s)"}]
    assert await stored_organizations(client, world) == before


async def test_delete_organization_with_users_and_projects_names_both(
    client: httpx.AsyncClient, world: World
) -> None:
    before = await stored_organizations(client, world)
    response = await client.delete(
        f"/organizations/{world.org_b}", headers=world["super_admin"].headers
    )
    error = assert_error(response, 409, "CONFLICT")
    assert error["details"] == [{"reference": "2 user(s)"}, {"reference": "1 project(s)"}]
    assert await stored_organizations(client, world) == before
    assert (await client.get("/auth/me", headers=world["user_b"].headers)).status_code == 200


async def test_delete_organization_after_its_users_are_deleted(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    headers = world["super_admin"].headers
    organization_id = await create_organization(app, "Org C")
    member = await create_account(app, organization_id, "member@example.com", Role.USER)
    assert (await client.delete(f"/users/{member.id}", headers=headers)).status_code == 204
    response = await client.delete(f"/organizations/{organization_id}", headers=headers)
    assert response.status_code == 204, response.text


async def test_delete_own_organization_is_conflict(client: httpx.AsyncClient, world: World) -> None:
    before = await stored_organizations(client, world)
    response = await client.delete(
        f"/organizations/{world.org_a}", headers=world["super_admin"].headers
    )
    assert_error(response, 409, "CONFLICT")
    assert await stored_organizations(client, world) == before


@pytest.mark.parametrize("account", ["org_admin", "org_admin_b", "user_b"])
async def test_delete_organization_requires_super_admin(
    client: httpx.AsyncClient, app: FastAPI, world: World, account: str
) -> None:
    empty_id = await create_organization(app, "Org C")
    before = await stored_organizations(client, world)
    headers = world[account].headers
    # The role check comes before any lookup: the same answer for an existing organization
    # (own, foreign or empty) as for none, so it reveals nothing.
    for organization_id in (world.org_a, world.org_b, empty_id, uuid.uuid4()):
        response = await client.delete(f"/organizations/{organization_id}", headers=headers)
        assert_error(response, 403, "FORBIDDEN")
    assert await stored_organizations(client, world) == before


async def test_delete_unknown_organization_is_not_found(
    client: httpx.AsyncClient, world: World
) -> None:
    before = await stored_organizations(client, world)
    response = await client.delete(
        f"/organizations/{uuid.uuid4()}", headers=world["super_admin"].headers
    )
    assert_error(response, 404, "NOT_FOUND")
    assert await stored_organizations(client, world) == before


async def test_delete_organization_requires_authentication(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    organization_id = await create_organization(app, "Org C")
    before = await stored_organizations(client, world)
    response = await client.delete(f"/organizations/{organization_id}")
    assert_error(response, 401, "UNAUTHORIZED")
    assert await stored_organizations(client, world) == before
