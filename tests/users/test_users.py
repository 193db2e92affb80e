"""The /users routes through the ASGI app: envelopes, validation, tenancy, role rules and the
effect of account changes on tokens already issued."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from budapp.core.auth import Principal
from budapp.core.components import PASSWORD_HASHER, components
from budapp.core.errors import Conflict
from budapp.core.roles import Role
from budapp.organizations.service import OrganizationService
from budapp.users.schemas import RoleUpdate, UserUpdate
from budapp.users.service import UserService
from tests.factories import PASSWORD, Account, World, create_account, login

NEW_PASSWORD = "a-brand-new-password"
USER_FIELDS = {
    "id",
    "organization_id",
    "email",
    "name",
    "role",
    "is_active",
    "last_login_at",
    "created_at",
    "updated_at",
}


async def stored_users(client: httpx.AsyncClient, world: World) -> list[dict[str, Any]]:
    """Every live user of every organization, as the super admin sees them."""
    response = await client.get(
        "/users", params={"per_page": 100}, headers=world["super_admin"].headers
    )
    assert response.status_code == 200, response.text
    users: list[dict[str, Any]] = response.json()["data"]
    return users


async def stored_user(client: httpx.AsyncClient, world: World, user_id: uuid.UUID) -> Any:
    response = await client.get(f"/users/{user_id}", headers=world["super_admin"].headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    return error


async def assert_can_log_in(client: httpx.AsyncClient, email: str, password: str) -> None:
    response = await client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text


async def assert_cannot_log_in(client: httpx.AsyncClient, email: str, password: str) -> None:
    response = await client.post("/auth/login", json={"email": email, "password": password})
    assert_error(response, 401, "UNAUTHORIZED")


async def assert_token_valid(client: httpx.AsyncClient, account: Account) -> None:
    response = await client.get("/auth/me", headers=account.headers)
    assert response.status_code == 200, response.text


async def assert_token_void(client: httpx.AsyncClient, account: Account) -> None:
    assert_error(await client.get("/auth/me", headers=account.headers), 401, "UNAUTHORIZED")


async def add_super_admin(app: FastAPI, client: httpx.AsyncClient, world: World) -> Account:
    account = await create_account(app, world.org_a, "second_admin@example.com", Role.SUPER_ADMIN)
    return await login(client, account)


def new_user(**overrides: Any) -> dict[str, Any]:
    return {"email": "new@example.com", "name": "New User", "password": PASSWORD, **overrides}


# --- GET /users ----------------------------------------------------------------------------


async def test_list_users_returns_envelope_with_page_meta(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/users", headers=world["super_admin"].headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert body["meta"] == {"total": 7, "page": 1, "per_page": 20}
    emails = [user["email"] for user in body["data"]]
    assert emails == sorted(f"{name}@example.com" for name in world.accounts)
    assert set(body["data"][0]) == USER_FIELDS


async def test_list_users_never_exposes_password_hashes(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/users", headers=world["super_admin"].headers)
    assert "password" not in response.text
    assert "argon2" not in response.text


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        ("org_admin", {"super_admin", "org_admin", "project_admin", "user", "outsider"}),
        ("project_admin", {"super_admin", "org_admin", "project_admin", "user", "outsider"}),
        ("org_admin_b", {"org_admin_b", "user_b"}),
    ],
)
async def test_list_users_is_scoped_to_the_callers_organization(
    client: httpx.AsyncClient, world: World, account: str, expected: set[str]
) -> None:
    response = await client.get("/users", headers=world[account].headers)
    assert response.status_code == 200
    body = response.json()
    assert {user["email"] for user in body["data"]} == {f"{n}@example.com" for n in expected}
    assert body["meta"]["total"] == len(expected)


async def test_list_users_paginates(client: httpx.AsyncClient, world: World) -> None:
    headers = world["super_admin"].headers
    everyone = (await client.get("/users", headers=headers)).json()["data"]
    second = await client.get("/users", params={"page": 2, "per_page": 3}, headers=headers)
    assert second.status_code == 200
    assert second.json()["meta"] == {"total": 7, "page": 2, "per_page": 3}
    assert second.json()["data"] == everyone[3:6]
    past_the_end = await client.get("/users", params={"page": 9, "per_page": 3}, headers=headers)
    assert past_the_end.json() == {"data": [], "meta": {"total": 7, "page": 9, "per_page": 3}}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"role": "org_admin"}, {"org_admin", "org_admin_b"}),
        ({"search": "USER"}, {"user", "user_b"}),
        ({"search": "%"}, set()),
        ({"search": "_b@"}, {"org_admin_b", "user_b"}),
        ({"role": "user", "search": "out"}, {"outsider"}),
    ],
)
async def test_list_users_filters(
    client: httpx.AsyncClient, world: World, params: dict[str, str], expected: set[str]
) -> None:
    response = await client.get("/users", params=params, headers=world["super_admin"].headers)
    assert response.status_code == 200
    body = response.json()
    assert {user["email"] for user in body["data"]} == {f"{n}@example.com" for n in expected}
    assert body["meta"]["total"] == len(expected)


async def test_list_users_filters_by_organization(client: httpx.AsyncClient, world: World) -> None:
    response = await client.get(
        "/users", params={"organization_id": str(world.org_b)}, headers=world["super_admin"].headers
    )
    assert {user["email"] for user in response.json()["data"]} == {
        "org_admin_b@example.com",
        "user_b@example.com",
    }


async def test_list_users_filters_by_active_state(client: httpx.AsyncClient, world: World) -> None:
    headers = world["super_admin"].headers
    response = await client.put(
        f"/users/{world['outsider'].id}", json={"is_active": False}, headers=headers
    )
    assert response.status_code == 200
    inactive = await client.get("/users", params={"is_active": "false"}, headers=headers)
    assert [user["email"] for user in inactive.json()["data"]] == ["outsider@example.com"]
    active = await client.get("/users", params={"is_active": "true"}, headers=headers)
    assert active.json()["meta"]["total"] == 6


async def test_list_users_filter_by_foreign_organization_is_empty(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(
        "/users", params={"organization_id": str(world.org_b)}, headers=world["org_admin"].headers
    )
    assert response.status_code == 200
    assert response.json() == {"data": [], "meta": {"total": 0, "page": 1, "per_page": 20}}


@pytest.mark.parametrize("account", ["user", "outsider", "user_b"])
async def test_list_users_requires_project_admin(
    client: httpx.AsyncClient, world: World, account: str
) -> None:
    assert_error(await client.get("/users", headers=world[account].headers), 403, "FORBIDDEN")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic dXNlcjpwdw=="}],
)
async def test_list_users_requires_authentication(
    client: httpx.AsyncClient, world: World, headers: dict[str, str]
) -> None:
    response = await client.get("/users", headers=headers)
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "params",
    [
        {"page": "0"},
        {"per_page": "0"},
        {"per_page": "101"},
        {"page": "one"},
        {"role": "god"},
        {"is_active": "maybe"},
        {"organization_id": "not-a-uuid"},
        {"search": "x" * 256},
        {"sort": "email"},
    ],
)
async def test_list_users_rejects_invalid_query(
    client: httpx.AsyncClient, world: World, params: dict[str, str]
) -> None:
    response = await client.get("/users", params=params, headers=world["super_admin"].headers)
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"][0]["field"] == next(iter(params))


# --- POST /users ---------------------------------------------------------------------------


async def test_create_user_returns_the_new_user(client: httpx.AsyncClient, world: World) -> None:
    response = await client.post("/users", json=new_user(), headers=world["org_admin"].headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert body["meta"] == {}
    user = body["data"]
    assert set(user) == USER_FIELDS
    assert user["email"] == "new@example.com"
    assert user["name"] == "New User"
    assert user["role"] == "user"
    assert user["organization_id"] == str(world.org_a)
    assert user["is_active"] is True
    assert user["last_login_at"] is None
    assert PASSWORD not in response.text
    assert await stored_user(client, world, user["id"]) == user
    await assert_can_log_in(client, "new@example.com", PASSWORD)


async def test_create_user_normalises_email_and_name(
    client: httpx.AsyncClient, world: World
) -> None:
    body = new_user(email="  Mixed.Case@Example.COM ", name="  Padded Name  ")
    response = await client.post("/users", json=body, headers=world["org_admin"].headers)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["email"] == "mixed.case@example.com"
    assert response.json()["data"]["name"] == "Padded Name"
    await assert_can_log_in(client, "MIXED.case@example.com", PASSWORD)


@pytest.mark.parametrize("role", ["user", "project_admin", "org_admin"])
async def test_org_admin_creates_user_with_role_up_to_its_own(
    client: httpx.AsyncClient, world: World, role: str
) -> None:
    response = await client.post(
        "/users", json=new_user(role=role), headers=world["org_admin"].headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["role"] == role


async def test_super_admin_creates_user_in_another_organization(
    client: httpx.AsyncClient, world: World
) -> None:
    body = new_user(organization_id=str(world.org_b), role="super_admin")
    response = await client.post("/users", json=body, headers=world["super_admin"].headers)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["organization_id"] == str(world.org_b)
    assert response.json()["data"]["role"] == "super_admin"
    listed = await client.get("/users", headers=world["org_admin_b"].headers)
    assert "new@example.com" in {user["email"] for user in listed.json()["data"]}


async def test_org_admin_cannot_create_super_admin(client: httpx.AsyncClient, world: World) -> None:
    before = await stored_users(client, world)
    response = await client.post(
        "/users", json=new_user(role="super_admin"), headers=world["org_admin"].headers
    )
    assert_error(response, 403, "FORBIDDEN")
    assert await stored_users(client, world) == before


@pytest.mark.parametrize("account", ["project_admin", "user", "user_b"])
async def test_create_user_requires_org_admin(
    client: httpx.AsyncClient, world: World, account: str
) -> None:
    before = await stored_users(client, world)
    response = await client.post("/users", json=new_user(), headers=world[account].headers)
    assert_error(response, 403, "FORBIDDEN")
    assert await stored_users(client, world) == before


async def test_create_user_requires_authentication(client: httpx.AsyncClient, world: World) -> None:
    before = await stored_users(client, world)
    assert_error(await client.post("/users", json=new_user()), 401, "UNAUTHORIZED")
    assert await stored_users(client, world) == before


@pytest.mark.parametrize(
    "email",
    [
        "user@example.com",
        "USER@EXAMPLE.COM",
        "User@Example.com",
        "  user@example.com  ",
        "user_b@example.com",
    ],
)
async def test_create_user_rejects_duplicate_email(
    client: httpx.AsyncClient, world: World, email: str
) -> None:
    before = await stored_users(client, world)
    response = await client.post(
        "/users", json=new_user(email=email), headers=world["org_admin"].headers
    )
    assert_error(response, 409, "CONFLICT")
    assert await stored_users(client, world) == before


async def test_create_user_in_foreign_organization_is_not_found(
    client: httpx.AsyncClient, world: World
) -> None:
    before = await stored_users(client, world)
    foreign = await client.post(
        "/users",
        json=new_user(organization_id=str(world.org_b)),
        headers=world["org_admin"].headers,
    )
    unknown_id = uuid.uuid4()
    unknown = await client.post(
        "/users",
        json=new_user(organization_id=str(unknown_id)),
        headers=world["org_admin"].headers,
    )
    foreign_error = assert_error(foreign, 404, "NOT_FOUND")
    unknown_error = assert_error(unknown, 404, "NOT_FOUND")
    # The same answer as for an id that does not exist: nothing tells the two apart.
    assert foreign_error["message"].replace(str(world.org_b), "?") == unknown_error[
        "message"
    ].replace(str(unknown_id), "?")
    assert await stored_users(client, world) == before


async def test_create_super_admin_in_foreign_organization_is_not_found(
    client: httpx.AsyncClient, world: World
) -> None:
    before = await stored_users(client, world)
    response = await client.post(
        "/users",
        json=new_user(organization_id=str(world.org_b), role="super_admin"),
        headers=world["org_admin"].headers,
    )
    assert_error(response, 404, "NOT_FOUND")
    assert await stored_users(client, world) == before


async def test_create_user_in_deleted_organization_is_not_found(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = world["super_admin"].headers
    created = await client.post("/organizations", json={"name": "Short-lived"}, headers=headers)
    organization_id = created.json()["data"]["id"]
    deleted = await client.delete(f"/organizations/{organization_id}", headers=headers)
    assert deleted.status_code == 204
    before = await stored_users(client, world)
    response = await client.post(
        "/users", json=new_user(organization_id=organization_id), headers=headers
    )
    assert_error(response, 404, "NOT_FOUND")
    assert await stored_users(client, world) == before


@pytest.mark.parametrize("password", ["", "short", "1234567"])
async def test_create_user_rejects_short_password(
    client: httpx.AsyncClient, world: World, password: str
) -> None:
    before = await stored_users(client, world)
    response = await client.post(
        "/users", json=new_user(password=password), headers=world["org_admin"].headers
    )
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"][0]["field"] == "password"
    assert await stored_users(client, world) == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": "No Email", "password": PASSWORD}, id="missing-email"),
        pytest.param({"email": "x@example.com", "password": PASSWORD}, id="missing-name"),
        pytest.param({"email": "x@example.com", "name": "X"}, id="missing-password"),
        pytest.param(new_user(email="not-an-email"), id="email-without-at"),
        pytest.param(new_user(email="two words@example.com"), id="email-with-space"),
        pytest.param(new_user(email="a@" + "b" * 320), id="email-too-long"),
        pytest.param(new_user(email=["new@example.com"]), id="email-list"),
        pytest.param(new_user(name="n" * 256), id="name-too-long"),
        pytest.param(new_user(name=""), id="name-empty"),
        pytest.param(new_user(name="   "), id="name-blank"),
        pytest.param(new_user(name=123), id="name-number"),
        pytest.param(new_user(name=None), id="name-null"),
        pytest.param(new_user(password=12345678), id="password-number"),
        pytest.param(new_user(password="p" * 1025), id="password-too-long"),
        pytest.param(new_user(role="god"), id="role-unknown"),
        pytest.param(new_user(role="SUPER_ADMIN"), id="role-wrong-case"),
        pytest.param(new_user(organization_id="not-a-uuid"), id="organization-id-invalid"),
        pytest.param(new_user(is_admin=True), id="unknown-field"),
        pytest.param(new_user(id=str(uuid.uuid4())), id="id-field"),
        pytest.param(new_user(is_active=False), id="is-active-field"),
        pytest.param(["new@example.com"], id="array-body"),
    ],
)
async def test_create_user_rejects_invalid_body(
    client: httpx.AsyncClient, world: World, body: Any
) -> None:
    before = await stored_users(client, world)
    response = await client.post("/users", json=body, headers=world["org_admin"].headers)
    assert_error(response, 422, "VALIDATION_ERROR")
    assert await stored_users(client, world) == before


@pytest.mark.parametrize("content", [b'{"email": ', b"", b"not json", b"{'email': 'x'}"])
async def test_create_user_rejects_malformed_json(
    client: httpx.AsyncClient, world: World, content: bytes
) -> None:
    before = await stored_users(client, world)
    response = await client.post(
        "/users",
        content=content,
        headers={**world["org_admin"].headers, "content-type": "application/json"},
    )
    assert_error(response, 422, "VALIDATION_ERROR")
    assert await stored_users(client, world) == before


async def test_create_user_reuses_email_of_deleted_user(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    old_id = world["outsider"].id
    assert (await client.delete(f"/users/{old_id}", headers=headers)).status_code == 204
    response = await client.post(
        "/users",
        json=new_user(email="Outsider@example.com", password=NEW_PASSWORD),
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["id"] != str(old_id)
    assert response.json()["data"]["email"] == "outsider@example.com"
    await assert_can_log_in(client, "outsider@example.com", NEW_PASSWORD)
    await assert_cannot_log_in(client, "outsider@example.com", PASSWORD)


# --- GET /users/{id} -----------------------------------------------------------------------


@pytest.mark.parametrize("account", ["super_admin", "org_admin", "project_admin"])
async def test_admin_reads_user_of_own_organization(
    client: httpx.AsyncClient, world: World, account: str
) -> None:
    response = await client.get(f"/users/{world['user'].id}", headers=world[account].headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert set(body["data"]) == USER_FIELDS
    assert body["data"]["id"] == str(world["user"].id)
    assert body["data"]["email"] == "user@example.com"
    assert body["data"]["role"] == "user"
    assert body["data"]["last_login_at"] is not None


async def test_user_reads_own_account(client: httpx.AsyncClient, world: World) -> None:
    account = world["user"]
    response = await client.get(f"/users/{account.id}", headers=account.headers)
    assert response.status_code == 200
    assert response.json()["data"]["email"] == account.email


async def test_user_cannot_read_another_user(client: httpx.AsyncClient, world: World) -> None:
    response = await client.get(f"/users/{world['outsider'].id}", headers=world["user"].headers)
    assert_error(response, 403, "FORBIDDEN")


@pytest.mark.parametrize(
    ("account", "target"),
    [
        ("org_admin_b", "user"),
        ("org_admin_b", "super_admin"),
        ("user_b", "user"),
        ("org_admin", "user_b"),
        ("project_admin", "org_admin_b"),
    ],
)
async def test_get_user_of_foreign_organization_is_not_found(
    client: httpx.AsyncClient, world: World, account: str, target: str
) -> None:
    headers = world[account].headers
    target_id = world[target].id
    foreign = await client.get(f"/users/{target_id}", headers=headers)
    unknown_id = uuid.uuid4()
    unknown = await client.get(f"/users/{unknown_id}", headers=headers)
    foreign_error = assert_error(foreign, 404, "NOT_FOUND")
    unknown_error = assert_error(unknown, 404, "NOT_FOUND")
    assert foreign_error["message"].replace(str(target_id), "?") == unknown_error[
        "message"
    ].replace(str(unknown_id), "?")


async def test_super_admin_reads_user_of_any_organization(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(
        f"/users/{world['user_b'].id}", headers=world["super_admin"].headers
    )
    assert response.status_code == 200
    assert response.json()["data"]["organization_id"] == str(world.org_b)


async def test_get_deleted_user_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    headers = world["org_admin"].headers
    user_id = world["outsider"].id
    assert (await client.delete(f"/users/{user_id}", headers=headers)).status_code == 204
    assert_error(await client.get(f"/users/{user_id}", headers=headers), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/users/not-a-uuid", None),
        ("PUT", "/users/not-a-uuid", {"name": "X"}),
        ("DELETE", "/users/not-a-uuid", None),
        ("GET", "/users/123/roles", None),
        ("PUT", "/users/123/roles", {"role": "user"}),
    ],
)
async def test_user_routes_reject_invalid_uuid_in_path(
    client: httpx.AsyncClient, world: World, method: str, path: str, body: Any
) -> None:
    before = await stored_users(client, world)
    response = await client.request(method, path, json=body, headers=world["super_admin"].headers)
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"][0]["in"] == "path"
    assert error["details"][0]["field"] == "user_id"
    assert await stored_users(client, world) == before


# --- PUT /users/{id} -----------------------------------------------------------------------


async def test_admin_updates_name_and_email(client: httpx.AsyncClient, world: World) -> None:
    target = world["user"]
    response = await client.put(
        f"/users/{target.id}",
        json={"name": "Renamed", "email": "Renamed@Example.com"},
        headers=world["org_admin"].headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert body["data"]["name"] == "Renamed"
    assert body["data"]["email"] == "renamed@example.com"
    assert await stored_user(client, world, target.id) == body["data"]
    await assert_can_log_in(client, "renamed@example.com", PASSWORD)
    await assert_cannot_log_in(client, "user@example.com", PASSWORD)


async def test_user_updates_own_name(client: httpx.AsyncClient, world: World) -> None:
    account = world["user"]
    response = await client.put(
        f"/users/{account.id}", json={"name": "Me Myself"}, headers=account.headers
    )
    assert response.status_code == 200, response.text
    assert (await stored_user(client, world, account.id))["name"] == "Me Myself"
    await assert_token_valid(client, account)


async def test_update_user_with_empty_body_changes_nothing(
    client: httpx.AsyncClient, world: World
) -> None:
    target = world["user"]
    before = await stored_user(client, world, target.id)
    response = await client.put(f"/users/{target.id}", json={}, headers=world["org_admin"].headers)
    assert response.status_code == 200
    assert (await stored_user(client, world, target.id))["name"] == before["name"]
    assert (await stored_user(client, world, target.id))["email"] == before["email"]


async def test_update_user_treats_null_fields_as_absent(
    client: httpx.AsyncClient, world: World
) -> None:
    target = world["user"]
    before = await stored_user(client, world, target.id)
    response = await client.put(
        f"/users/{target.id}",
        json={"name": None, "email": None, "password": None, "is_active": None},
        headers=world["org_admin"].headers,
    )
    assert response.status_code == 200, response.text
    after = await stored_user(client, world, target.id)
    assert {k: after[k] for k in ("name", "email", "is_active")} == {
        k: before[k] for k in ("name", "email", "is_active")
    }
    await assert_token_valid(client, target)


async def test_update_user_keeps_own_email_in_other_case(
    client: httpx.AsyncClient, world: World
) -> None:
    account = world["user"]
    response = await client.put(
        f"/users/{account.id}", json={"email": "USER@example.com"}, headers=account.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["email"] == "user@example.com"


@pytest.mark.parametrize(
    "email", ["outsider@example.com", "OUTSIDER@EXAMPLE.COM", " user_b@example.com "]
)
async def test_update_user_rejects_duplicate_email(
    client: httpx.AsyncClient, world: World, email: str
) -> None:
    before = await stored_users(client, world)
    response = await client.put(
        f"/users/{world['user'].id}", json={"email": email}, headers=world["org_admin"].headers
    )
    assert_error(response, 409, "CONFLICT")
    assert await stored_users(client, world) == before


async def test_update_user_rejects_duplicate_email_without_other_changes(
    client: httpx.AsyncClient, world: World
) -> None:
    before = await stored_users(client, world)
    response = await client.put(
        f"/users/{world['user'].id}",
        json={"name": "Would Change", "is_active": False, "email": "outsider@example.com"},
        headers=world["org_admin"].headers,
    )
    assert_error(response, 409, "CONFLICT")
    assert await stored_users(client, world) == before
    await assert_token_valid(client, world["user"])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": "n" * 256}, id="name-too-long"),
        pytest.param({"name": ""}, id="name-empty"),
        pytest.param({"name": 42}, id="name-number"),
        pytest.param({"email": "nope"}, id="email-invalid"),
        pytest.param({"email": 7}, id="email-number"),
        pytest.param({"is_active": "maybe"}, id="is-active-string"),
        pytest.param({"is_active": [True]}, id="is-active-list"),
        pytest.param({"role": "super_admin"}, id="role-is-not-updatable-here"),
        pytest.param({"organization_id": str(uuid.uuid4())}, id="organization-not-updatable"),
        pytest.param({"nickname": "x"}, id="unknown-field"),
        pytest.param({"password": ""}, id="password-empty"),
        pytest.param({"password": "p" * 1025}, id="password-too-long"),
        pytest.param([{"name": "x"}], id="array-body"),
    ],
)
async def test_update_user_rejects_invalid_body(
    client: httpx.AsyncClient, world: World, body: Any
) -> None:
    before = await stored_users(client, world)
    response = await client.put(
        f"/users/{world['user'].id}", json=body, headers=world["org_admin"].headers
    )
    assert_error(response, 422, "VALIDATION_ERROR")
    assert await stored_users(client, world) == before


async def test_update_user_rejects_malformed_json(client: httpx.AsyncClient, world: World) -> None:
    before = await stored_users(client, world)
    response = await client.put(
        f"/users/{world['user'].id}",
        content=b'{"name": "x",',
        headers={**world["org_admin"].headers, "content-type": "application/json"},
    )
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"][0]["type"] == "json_invalid"
    assert await stored_users(client, world) == before


@pytest.mark.parametrize(
    ("account", "target"),
    [("org_admin_b", "user"), ("user_b", "user"), ("org_admin", "user_b")],
)
async def test_update_user_of_foreign_organization_is_not_found(
    client: httpx.AsyncClient, world: World, account: str, target: str
) -> None:
    before = await stored_users(client, world)
    response = await client.put(
        f"/users/{world[target].id}",
        json={"name": "Hijacked", "is_active": False},
        headers=world[account].headers,
    )
    assert_error(response, 404, "NOT_FOUND")
    assert await stored_users(client, world) == before


async def test_update_unknown_user_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    response = await client.put(
        f"/users/{uuid.uuid4()}", json={"name": "Ghost"}, headers=world["super_admin"].headers
    )
    assert_error(response, 404, "NOT_FOUND")


@pytest.mark.parametrize(("account", "target"), [("user", "outsider"), ("project_admin", "user")])
async def test_update_another_user_requires_org_admin(
    client: httpx.AsyncClient, world: World, account: str, target: str
) -> None:
    before = await stored_users(client, world)
    response = await client.put(
        f"/users/{world[target].id}", json={"name": "Changed"}, headers=world[account].headers
    )
    assert_error(response, 403, "FORBIDDEN")
    assert await stored_users(client, world) == before


@pytest.mark.parametrize(
    "body", [{"name": "Demoted"}, {"is_active": False}, {"password": NEW_PASSWORD}]
)
async def test_org_admin_cannot_update_super_admin(
    client: httpx.AsyncClient, world: World, body: dict[str, Any]
) -> None:
    before = await stored_users(client, world)
    response = await client.put(
        f"/users/{world['super_admin'].id}", json=body, headers=world["org_admin"].headers
    )
    assert_error(response, 403, "FORBIDDEN")
    assert await stored_users(client, world) == before
    await assert_token_valid(client, world["super_admin"])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"password": NEW_PASSWORD}, id="missing-current"),
        pytest.param(
            {"password": NEW_PASSWORD, "current_password": "wrong-password"}, id="wrong-current"
        ),
        pytest.param(
            {"password": NEW_PASSWORD, "current_password": PASSWORD.upper()}, id="wrong-case"
        ),
    ],
)
async def test_self_password_change_requires_correct_current_password(
    client: httpx.AsyncClient, world: World, body: dict[str, str]
) -> None:
    account = world["user"]
    before = await stored_users(client, world)
    response = await client.put(f"/users/{account.id}", json=body, headers=account.headers)
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"] == [{"field": "current_password", "message": "incorrect"}]
    assert await stored_users(client, world) == before
    await assert_token_valid(client, account)
    await assert_cannot_log_in(client, account.email, NEW_PASSWORD)
    await assert_can_log_in(client, account.email, PASSWORD)


async def test_self_password_change_with_current_password(
    client: httpx.AsyncClient, world: World
) -> None:
    account = world["user"]
    response = await client.put(
        f"/users/{account.id}",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=account.headers,
    )
    assert response.status_code == 200, response.text
    await assert_cannot_log_in(client, account.email, PASSWORD)
    await assert_can_log_in(client, account.email, NEW_PASSWORD)


async def test_self_password_change_voids_other_sessions(
    client: httpx.AsyncClient, world: World
) -> None:
    account = world["user"]
    other_device = await login(
        client, Account(account.id, account.email, account.organization_id, account.role)
    )
    await assert_token_valid(client, other_device)
    response = await client.put(
        f"/users/{account.id}",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=account.headers,
    )
    assert response.status_code == 200, response.text
    await assert_token_void(client, other_device)


async def test_self_password_change_rejects_short_password(
    client: httpx.AsyncClient, world: World
) -> None:
    account = world["user"]
    response = await client.put(
        f"/users/{account.id}",
        json={"password": "short", "current_password": PASSWORD},
        headers=account.headers,
    )
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"][0]["field"] == "password"
    await assert_token_valid(client, account)
    await assert_can_log_in(client, account.email, PASSWORD)


async def test_admin_password_change_rejects_short_password(
    client: httpx.AsyncClient, world: World
) -> None:
    target = world["user"]
    before = await stored_users(client, world)
    response = await client.put(
        f"/users/{target.id}",
        json={"password": "1234567", "name": "Would Change"},
        headers=world["org_admin"].headers,
    )
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"][0]["field"] == "password"
    assert await stored_users(client, world) == before
    await assert_token_valid(client, target)
    await assert_can_log_in(client, target.email, PASSWORD)


async def test_admin_password_change_needs_no_current_password(
    client: httpx.AsyncClient, world: World
) -> None:
    target = world["user"]
    response = await client.put(
        f"/users/{target.id}", json={"password": NEW_PASSWORD}, headers=world["org_admin"].headers
    )
    assert response.status_code == 200, response.text
    await assert_cannot_log_in(client, target.email, PASSWORD)
    await assert_can_log_in(client, target.email, NEW_PASSWORD)


async def test_admin_password_change_voids_existing_tokens(
    client: httpx.AsyncClient, world: World
) -> None:
    target = world["user"]
    await assert_token_valid(client, target)
    response = await client.put(
        f"/users/{target.id}", json={"password": NEW_PASSWORD}, headers=world["org_admin"].headers
    )
    assert response.status_code == 200, response.text
    await assert_token_void(client, target)
    refreshed = await client.post("/auth/refresh", json={"refresh_token": target.refresh_token})
    assert_error(refreshed, 401, "UNAUTHORIZED")
    await assert_token_valid(client, await login(client, target, NEW_PASSWORD))
    # The admin's own session is untouched.
    await assert_token_valid(client, world["org_admin"])


async def test_deactivated_user_token_is_rejected(client: httpx.AsyncClient, world: World) -> None:
    target = world["user"]
    response = await client.put(
        f"/users/{target.id}", json={"is_active": False}, headers=world["org_admin"].headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["is_active"] is False
    await assert_token_void(client, target)
    await assert_cannot_log_in(client, target.email, PASSWORD)
    refreshed = await client.post("/auth/refresh", json={"refresh_token": target.refresh_token})
    assert_error(refreshed, 401, "UNAUTHORIZED")


async def test_reactivated_user_logs_in_again_but_old_token_stays_void(
    client: httpx.AsyncClient, world: World
) -> None:
    target = world["user"]
    headers = world["org_admin"].headers
    for active in (False, True):
        response = await client.put(
            f"/users/{target.id}", json={"is_active": active}, headers=headers
        )
        assert response.status_code == 200, response.text
    await assert_token_void(client, target)
    await assert_token_valid(client, await login(client, target))


@pytest.mark.parametrize("account", ["user", "org_admin", "super_admin"])
async def test_user_cannot_deactivate_self(
    client: httpx.AsyncClient, world: World, account: str
) -> None:
    me = world[account]
    before = await stored_users(client, world)
    response = await client.put(f"/users/{me.id}", json={"is_active": False}, headers=me.headers)
    assert_error(response, 409, "CONFLICT")
    assert await stored_users(client, world) == before
    await assert_token_valid(client, me)


async def test_setting_own_active_state_to_its_current_value_is_allowed(
    client: httpx.AsyncClient, world: World
) -> None:
    me = world["user"]
    response = await client.put(f"/users/{me.id}", json={"is_active": True}, headers=me.headers)
    assert response.status_code == 200, response.text
    await assert_token_valid(client, me)


# --- DELETE /users/{id} --------------------------------------------------------------------


async def test_delete_user_hides_it_everywhere(client: httpx.AsyncClient, world: World) -> None:
    headers = world["org_admin"].headers
    target = world["outsider"]
    response = await client.delete(f"/users/{target.id}", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await client.get(f"/users/{target.id}", headers=headers), 404, "NOT_FOUND")
    listed = (await client.get("/users", headers=headers)).json()
    assert target.email not in {user["email"] for user in listed["data"]}
    assert listed["meta"]["total"] == 4
    assert_error(await client.delete(f"/users/{target.id}", headers=headers), 404, "NOT_FOUND")
    assert_error(
        await client.put(f"/users/{target.id}", json={"name": "Back"}, headers=headers),
        404,
        "NOT_FOUND",
    )


async def test_deleted_user_token_is_rejected(client: httpx.AsyncClient, world: World) -> None:
    target = world["user"]
    await assert_token_valid(client, target)
    response = await client.delete(f"/users/{target.id}", headers=world["org_admin"].headers)
    assert response.status_code == 204
    await assert_token_void(client, target)
    await assert_cannot_log_in(client, target.email, PASSWORD)
    refreshed = await client.post("/auth/refresh", json={"refresh_token": target.refresh_token})
    assert_error(refreshed, 401, "UNAUTHORIZED")


@pytest.mark.parametrize("account", ["org_admin", "super_admin"])
async def test_user_cannot_delete_self(
    client: httpx.AsyncClient, world: World, account: str
) -> None:
    me = world[account]
    before = await stored_users(client, world)
    assert_error(await client.delete(f"/users/{me.id}", headers=me.headers), 409, "CONFLICT")
    assert await stored_users(client, world) == before
    await assert_token_valid(client, me)


@pytest.mark.parametrize(("account", "target"), [("project_admin", "user"), ("user", "outsider")])
async def test_delete_user_requires_org_admin(
    client: httpx.AsyncClient, world: World, account: str, target: str
) -> None:
    before = await stored_users(client, world)
    response = await client.delete(f"/users/{world[target].id}", headers=world[account].headers)
    assert_error(response, 403, "FORBIDDEN")
    assert await stored_users(client, world) == before


async def test_org_admin_cannot_delete_super_admin(client: httpx.AsyncClient, world: World) -> None:
    before = await stored_users(client, world)
    response = await client.delete(
        f"/users/{world['super_admin'].id}", headers=world["org_admin"].headers
    )
    assert_error(response, 403, "FORBIDDEN")
    assert await stored_users(client, world) == before


async def test_org_admin_deletes_another_org_admin(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    peer = await create_account(app, world.org_a, "peer@example.com", Role.ORG_ADMIN)
    response = await client.delete(f"/users/{peer.id}", headers=world["org_admin"].headers)
    assert response.status_code == 204


@pytest.mark.parametrize(("account", "target"), [("org_admin_b", "user"), ("org_admin", "user_b")])
async def test_delete_user_of_foreign_organization_is_not_found(
    client: httpx.AsyncClient, world: World, account: str, target: str
) -> None:
    before = await stored_users(client, world)
    response = await client.delete(f"/users/{world[target].id}", headers=world[account].headers)
    assert_error(response, 404, "NOT_FOUND")
    assert await stored_users(client, world) == before
    await assert_token_valid(client, world[target])


async def test_delete_unknown_user_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    before = await stored_users(client, world)
    response = await client.delete(f"/users/{uuid.uuid4()}", headers=world["org_admin"].headers)
    assert_error(response, 404, "NOT_FOUND")
    assert await stored_users(client, world) == before


# --- last super admin ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        pytest.param("DELETE", "", None, id="delete"),
        pytest.param("PUT", "/roles", {"role": "org_admin"}, id="demote"),
        pytest.param("PUT", "", {"is_active": False}, id="deactivate"),
    ],
)
async def test_sole_super_admin_cannot_remove_itself(
    client: httpx.AsyncClient, world: World, method: str, suffix: str, body: Any
) -> None:
    admin = world["super_admin"]
    before = await stored_users(client, world)
    response = await client.request(
        method, f"/users/{admin.id}{suffix}", json=body, headers=admin.headers
    )
    assert_error(response, 409, "CONFLICT")
    assert await stored_users(client, world) == before
    await assert_token_valid(client, admin)


RemoveSuperAdmin = Callable[[UserService, uuid.UUID, Principal], Awaitable[object]]


async def _delete(users: UserService, target: uuid.UUID, by: Principal) -> object:
    return await users.delete(await users.access(target, by, "manage"))


async def _demote(users: UserService, target: uuid.UUID, by: Principal) -> object:
    access = await users.access(target, by, "manage")
    return await users.set_role(access, RoleUpdate(role=Role.ORG_ADMIN))


async def _deactivate(users: UserService, target: uuid.UUID, by: Principal) -> object:
    access = await users.access(target, by, "edit")
    return await users.update(access, UserUpdate(is_active=False))


@pytest.mark.parametrize(
    "remove",
    [
        pytest.param(_delete, id="delete"),
        pytest.param(_demote, id="demote"),
        pytest.param(_deactivate, id="deactivate"),
    ],
)
async def test_last_active_super_admin_survives_an_actor_that_is_gone(
    client: httpx.AsyncClient, app: FastAPI, world: World, remove: RemoveSuperAdmin
) -> None:
    # Through the API the acting super admin is itself active, so the guard behind the self
    # rules is met only when the actor's own account went away mid-request (a concurrent
    # delete or deactivation). That stale principal is played here against the service.
    gone = Principal(
        user_id=uuid.uuid4(),
        organization_id=world.org_a,
        role=Role.SUPER_ADMIN,
        email="gone@example.com",
    )
    before = await stored_users(client, world)
    async with components(app).session_factory() as session:
        organizations = OrganizationService(session, components(app).references)
        users = UserService(session, components(app)[PASSWORD_HASHER], organizations)
        with pytest.raises(Conflict, match="last active super admin"):
            await remove(users, world["super_admin"].id, gone)
        await session.rollback()
    assert await stored_users(client, world) == before


@pytest.mark.parametrize(
    ("method", "suffix", "body", "status"),
    [
        pytest.param("DELETE", "", None, 204, id="delete"),
        pytest.param("PUT", "/roles", {"role": "org_admin"}, 200, id="demote"),
        pytest.param("PUT", "", {"is_active": False}, 200, id="deactivate"),
    ],
)
async def test_super_admin_may_remove_another_super_admin(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    method: str,
    suffix: str,
    body: Any,
    status: int,
) -> None:
    second = await add_super_admin(app, client, world)
    response = await client.request(
        method, f"/users/{second.id}{suffix}", json=body, headers=world["super_admin"].headers
    )
    assert response.status_code == status, response.text
    remaining = await client.get(
        "/users",
        params={"role": "super_admin", "is_active": "true"},
        headers=world["super_admin"].headers,
    )
    assert [user["id"] for user in remaining.json()["data"]] == [str(world["super_admin"].id)]


@pytest.mark.parametrize(
    ("method", "suffix", "body", "status"),
    [
        pytest.param("DELETE", "", None, 204, id="delete"),
        pytest.param("PUT", "/roles", {"role": "org_admin"}, 200, id="demote"),
    ],
)
async def test_deactivated_super_admin_may_be_removed_while_another_stays_active(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    method: str,
    suffix: str,
    body: Any,
    status: int,
) -> None:
    headers = world["super_admin"].headers
    second = await add_super_admin(app, client, world)
    deactivated = await client.put(
        f"/users/{second.id}", json={"is_active": False}, headers=headers
    )
    assert deactivated.status_code == 200, deactivated.text
    # Removing an inactive super admin leaves the number of active ones unchanged.
    response = await client.request(
        method, f"/users/{second.id}{suffix}", json=body, headers=headers
    )
    assert response.status_code == status, response.text


# --- GET /users/{id}/roles -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "effective"),
    [
        ("super_admin", ["super_admin", "org_admin", "project_admin", "user"]),
        ("org_admin", ["org_admin", "project_admin", "user"]),
        ("project_admin", ["project_admin", "user"]),
        ("user", ["user"]),
    ],
)
async def test_get_user_roles_lists_effective_roles(
    client: httpx.AsyncClient, world: World, account: str, effective: list[str]
) -> None:
    me = world[account]
    response = await client.get(f"/users/{me.id}/roles", headers=me.headers)
    assert response.status_code == 200
    assert response.json() == {
        "data": {"user_id": str(me.id), "role": me.role.value, "effective_roles": effective},
        "meta": {},
    }


async def test_project_admin_reads_roles_of_another_user(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(
        f"/users/{world['org_admin'].id}/roles", headers=world["project_admin"].headers
    )
    assert response.status_code == 200
    assert response.json()["data"]["role"] == "org_admin"


async def test_user_cannot_read_roles_of_another_user(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(
        f"/users/{world['outsider'].id}/roles", headers=world["user"].headers
    )
    assert_error(response, 403, "FORBIDDEN")


@pytest.mark.parametrize(("account", "target"), [("org_admin_b", "user"), ("user", "user_b")])
async def test_get_roles_of_foreign_user_is_not_found(
    client: httpx.AsyncClient, world: World, account: str, target: str
) -> None:
    response = await client.get(f"/users/{world[target].id}/roles", headers=world[account].headers)
    assert_error(response, 404, "NOT_FOUND")


# --- PUT /users/{id}/roles -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "effective"),
    [
        ("project_admin", ["project_admin", "user"]),
        ("org_admin", ["org_admin", "project_admin", "user"]),
        ("user", ["user"]),
    ],
)
async def test_org_admin_sets_role(
    client: httpx.AsyncClient, world: World, role: str, effective: list[str]
) -> None:
    target = world["user"]
    response = await client.put(
        f"/users/{target.id}/roles", json={"role": role}, headers=world["org_admin"].headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "data": {"user_id": str(target.id), "role": role, "effective_roles": effective},
        "meta": {},
    }
    assert (await stored_user(client, world, target.id))["role"] == role


async def test_promoted_user_gains_the_role_with_its_existing_token(
    client: httpx.AsyncClient, world: World
) -> None:
    target = world["user"]
    assert_error(await client.get("/users", headers=target.headers), 403, "FORBIDDEN")
    response = await client.put(
        f"/users/{target.id}/roles",
        json={"role": "project_admin"},
        headers=world["org_admin"].headers,
    )
    assert response.status_code == 200, response.text
    assert (await client.get("/users", headers=target.headers)).status_code == 200


async def test_demoted_user_loses_the_role_with_its_existing_token(
    client: httpx.AsyncClient, world: World
) -> None:
    target = world["project_admin"]
    assert (await client.get("/users", headers=target.headers)).status_code == 200
    response = await client.put(
        f"/users/{target.id}/roles", json={"role": "user"}, headers=world["org_admin"].headers
    )
    assert response.status_code == 200, response.text
    assert_error(await client.get("/users", headers=target.headers), 403, "FORBIDDEN")


async def test_super_admin_promotes_to_super_admin(client: httpx.AsyncClient, world: World) -> None:
    target = world["user_b"]
    response = await client.put(
        f"/users/{target.id}/roles",
        json={"role": "super_admin"},
        headers=world["super_admin"].headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["role"] == "super_admin"


async def test_org_admin_cannot_promote_to_super_admin(
    client: httpx.AsyncClient, world: World
) -> None:
    before = await stored_users(client, world)
    response = await client.put(
        f"/users/{world['user'].id}/roles",
        json={"role": "super_admin"},
        headers=world["org_admin"].headers,
    )
    assert_error(response, 403, "FORBIDDEN")
    assert await stored_users(client, world) == before


@pytest.mark.parametrize("role", ["org_admin", "user"])
async def test_org_admin_cannot_change_role_of_super_admin(
    client: httpx.AsyncClient, world: World, role: str
) -> None:
    before = await stored_users(client, world)
    response = await client.put(
        f"/users/{world['super_admin'].id}/roles",
        json={"role": role},
        headers=world["org_admin"].headers,
    )
    assert_error(response, 403, "FORBIDDEN")
    assert await stored_users(client, world) == before


@pytest.mark.parametrize(
    ("account", "role"),
    [("org_admin", "super_admin"), ("org_admin", "user"), ("super_admin", "user")],
)
async def test_user_cannot_change_own_role(
    client: httpx.AsyncClient, world: World, account: str, role: str
) -> None:
    me = world[account]
    before = await stored_users(client, world)
    response = await client.put(f"/users/{me.id}/roles", json={"role": role}, headers=me.headers)
    assert_error(response, 409, "CONFLICT")
    assert await stored_users(client, world) == before


@pytest.mark.parametrize("account", ["project_admin", "user"])
async def test_set_role_requires_org_admin(
    client: httpx.AsyncClient, world: World, account: str
) -> None:
    before = await stored_users(client, world)
    response = await client.put(
        f"/users/{world['outsider'].id}/roles",
        json={"role": "project_admin"},
        headers=world[account].headers,
    )
    assert_error(response, 403, "FORBIDDEN")
    assert await stored_users(client, world) == before


@pytest.mark.parametrize(("account", "target"), [("org_admin_b", "user"), ("org_admin", "user_b")])
async def test_set_role_of_foreign_user_is_not_found(
    client: httpx.AsyncClient, world: World, account: str, target: str
) -> None:
    before = await stored_users(client, world)
    response = await client.put(
        f"/users/{world[target].id}/roles",
        json={"role": "org_admin"},
        headers=world[account].headers,
    )
    assert_error(response, 404, "NOT_FOUND")
    assert await stored_users(client, world) == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="missing-role"),
        pytest.param({"role": "god"}, id="unknown-role"),
        pytest.param({"role": None}, id="null-role"),
        pytest.param({"role": 3}, id="number-role"),
        pytest.param({"role": ["org_admin"]}, id="list-role"),
        pytest.param({"role": "user", "scope": "global"}, id="unknown-field"),
    ],
)
async def test_set_role_rejects_invalid_body(
    client: httpx.AsyncClient, world: World, body: Any
) -> None:
    before = await stored_users(client, world)
    response = await client.put(
        f"/users/{world['user'].id}/roles", json=body, headers=world["org_admin"].headers
    )
    assert_error(response, 422, "VALIDATION_ERROR")
    assert await stored_users(client, world) == before


async def test_set_role_rejects_malformed_json(client: httpx.AsyncClient, world: World) -> None:
    before = await stored_users(client, world)
    response = await client.put(
        f"/users/{world['user'].id}/roles",
        content=b'{"role": org_admin}',
        headers={**world["org_admin"].headers, "content-type": "application/json"},
    )
    assert_error(response, 422, "VALIDATION_ERROR")
    assert await stored_users(client, world) == before
