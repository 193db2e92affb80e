"""What each mutating route leaves in the audit trail: the action, the resource, the actor, the
request's origin and the details; nothing for refused writes or reads; never a secret."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from budapp.audit.models import AuditRecord
from budapp.audit.schemas import AuditRead
from budapp.core.components import components
from tests.factories import PASSWORD, Account, World

USER_AGENT = "audit-tests/1.0"


def sent_by(account: Account | None, request_id: str) -> dict[str, str]:
    headers = {"X-Request-ID": request_id, "User-Agent": USER_AGENT}
    return {**account.headers, **headers} if account else headers


async def records_of(app: FastAPI, request_id: str) -> list[AuditRead]:
    """The records a request left, read from the database as the API would show them."""
    async with components(app).session_factory() as session:
        statement = (
            select(AuditRecord)
            .where(AuditRecord.request_id == request_id)
            .order_by(AuditRecord.sequence)
        )
        return [AuditRead.model_validate(row) for row in await session.scalars(statement)]


async def record_count(app: FastAPI) -> int:
    async with components(app).session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(AuditRecord)) or 0)


def assert_origin(record: AuditRead, actor: Account, request_id: str) -> None:
    assert (record.actor_type, record.actor_id, record.actor_label) == (
        "user",
        str(actor.id),
        actor.email,
    )
    assert record.ip_address == "127.0.0.1"
    assert record.user_agent == USER_AGENT
    assert record.request_id == request_id


# --- organizations ---------------------------------------------------------------------------


async def test_organization_create_is_recorded(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        "/organizations",
        json={"name": "Audited", "description": "first"},
        headers=sent_by(world["super_admin"], "org-create"),
    )
    assert response.status_code == 201
    organization_id = response.json()["data"]["id"]
    [record] = await records_of(app, "org-create")
    assert (record.action, record.resource_type, record.resource_id) == (
        "organization.create",
        "organization",
        organization_id,
    )
    # An organization belongs to itself, not to the super admin's organization.
    assert str(record.organization_id) == organization_id
    assert_origin(record, world["super_admin"], "org-create")
    assert record.details == {
        "values": {
            "id": organization_id,
            "name": "Audited",
            "description": "first",
            "deleted_at": None,
        }
    }


async def test_organization_update_records_only_what_changed(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    response = await client.put(
        f"/organizations/{world.org_a}",
        json={"name": "Org A", "description": "now described"},
        headers=sent_by(world["org_admin"], "org-update"),
    )
    assert response.status_code == 200
    [record] = await records_of(app, "org-update")
    assert (record.action, record.resource_id) == ("organization.update", str(world.org_a))
    assert record.organization_id == world.org_a
    assert_origin(record, world["org_admin"], "org-update")
    # The unchanged name and the bookkeeping `updated_at` are left out.
    assert record.details == {"changes": {"description": {"old": None, "new": "now described"}}}


async def test_organization_soft_delete_is_recorded_as_delete(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    created = await client.post(
        "/organizations", json={"name": "Doomed"}, headers=world["super_admin"].headers
    )
    organization_id = created.json()["data"]["id"]
    response = await client.delete(
        f"/organizations/{organization_id}", headers=sent_by(world["super_admin"], "org-delete")
    )
    assert response.status_code == 204
    [record] = await records_of(app, "org-delete")
    assert (record.action, record.resource_type, record.resource_id) == (
        "organization.delete",
        "organization",
        organization_id,
    )
    assert str(record.organization_id) == organization_id
    assert_origin(record, world["super_admin"], "org-delete")
    change = record.details["changes"]
    assert list(change) == ["deleted_at"]
    assert change["deleted_at"]["old"] is None
    assert change["deleted_at"]["new"]


# --- users -----------------------------------------------------------------------------------


async def test_user_create_is_recorded_with_the_password_hash_masked(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        "/users",
        json={"email": "New@Example.com", "name": "New", "password": "a-new-password"},
        headers=sent_by(world["org_admin"], "user-create"),
    )
    assert response.status_code == 201
    user_id = response.json()["data"]["id"]
    [record] = await records_of(app, "user-create")
    assert (record.action, record.resource_type, record.resource_id) == (
        "user.create",
        "user",
        user_id,
    )
    assert record.organization_id == world.org_a
    assert_origin(record, world["org_admin"], "user-create")
    assert record.details == {
        "values": {
            "id": user_id,
            "organization_id": str(world.org_a),
            "email": "new@example.com",
            "name": "New",
            "password_hash": "***",
            "role": "user",
            "is_active": True,
            "deleted_at": None,
        }
    }


async def test_user_update_records_only_the_changed_fields(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    target = world["user"]
    response = await client.put(
        f"/users/{target.id}",
        json={"name": "Renamed", "email": target.email},
        headers=sent_by(world["org_admin"], "user-update"),
    )
    assert response.status_code == 200
    [record] = await records_of(app, "user-update")
    assert (record.action, record.resource_id) == ("user.update", str(target.id))
    assert record.organization_id == world.org_a
    assert_origin(record, world["org_admin"], "user-update")
    assert record.details == {"changes": {"name": {"old": target.email, "new": "Renamed"}}}


async def test_password_change_is_recorded_without_any_value(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    target = world["user"]
    response = await client.put(
        f"/users/{target.id}",
        json={"password": "a-brand-new-password"},
        headers=sent_by(world["org_admin"], "password-reset"),
    )
    assert response.status_code == 200
    [record] = await records_of(app, "password-reset")
    assert record.action == "user.update"
    # sessions_valid_after changes too, but it is bookkeeping (audit: False).
    assert record.details == {"changes": {"password_hash": {"changed": True}}}


async def test_role_change_is_recorded(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    target = world["user"]
    response = await client.put(
        f"/users/{target.id}/roles",
        json={"role": "project_admin"},
        headers=sent_by(world["org_admin"], "role-change"),
    )
    assert response.status_code == 200
    [record] = await records_of(app, "role-change")
    assert (record.action, record.resource_type, record.resource_id) == (
        "user.update",
        "user",
        str(target.id),
    )
    assert record.organization_id == world.org_a
    assert_origin(record, world["org_admin"], "role-change")
    assert record.details == {"changes": {"role": {"old": "user", "new": "project_admin"}}}


async def test_user_soft_delete_is_recorded_as_delete(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    target = world["outsider"]
    response = await client.delete(
        f"/users/{target.id}", headers=sent_by(world["org_admin"], "user-delete")
    )
    assert response.status_code == 204
    [record] = await records_of(app, "user-delete")
    assert (record.action, record.resource_type, record.resource_id) == (
        "user.delete",
        "user",
        str(target.id),
    )
    assert record.organization_id == world.org_a
    assert_origin(record, world["org_admin"], "user-delete")
    changes = record.details["changes"]
    assert set(changes) == {"deleted_at", "is_active"}
    assert changes["deleted_at"]["old"] is None
    assert changes["deleted_at"]["new"]
    assert changes["is_active"] == {"old": True, "new": False}


# --- projects and members --------------------------------------------------------------------


async def test_project_create_records_the_project_and_its_first_admin(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    creator = world["project_admin"]
    response = await client.post(
        "/projects",
        json={"name": "Audited project", "settings": {"gpu": 2}},
        headers=sent_by(creator, "project-create"),
    )
    assert response.status_code == 201
    project_id = response.json()["data"]["id"]
    project, member = await records_of(app, "project-create")
    assert (project.action, project.resource_type, project.resource_id) == (
        "project.create",
        "project",
        project_id,
    )
    assert project.details == {
        "values": {
            "id": project_id,
            "organization_id": str(world.org_a),
            "name": "Audited project",
            "description": None,
            "owner_id": str(creator.id),
            "settings": {"gpu": 2},
            "deleted_at": None,
        }
    }
    assert (member.action, member.resource_type) == ("project_member.create", "project_member")
    assert member.details["values"]["project_id"] == project_id
    assert member.details["values"]["user_id"] == str(creator.id)
    assert member.details["values"]["role"] == "admin"
    for record in (project, member):
        assert record.organization_id == world.org_a
        assert_origin(record, creator, "project-create")
    assert member.sequence == project.sequence + 1


async def test_project_update_is_recorded(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    response = await client.put(
        f"/projects/{world.project_a}",
        json={"name": "Project A2", "settings": {"tier": "gold"}},
        headers=sent_by(world["project_admin"], "project-update"),
    )
    assert response.status_code == 200
    [record] = await records_of(app, "project-update")
    assert (record.action, record.resource_id) == ("project.update", str(world.project_a))
    assert record.organization_id == world.org_a
    assert_origin(record, world["project_admin"], "project-update")
    assert record.details == {
        "changes": {
            "name": {"old": "Project A", "new": "Project A2"},
            "settings": {"old": {}, "new": {"tier": "gold"}},
        }
    }


async def test_project_soft_delete_is_recorded_as_delete(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    response = await client.delete(
        f"/projects/{world.project_a}", headers=sent_by(world["org_admin"], "project-delete")
    )
    assert response.status_code == 204
    [record] = await records_of(app, "project-delete")
    assert (record.action, record.resource_type, record.resource_id) == (
        "project.delete",
        "project",
        str(world.project_a),
    )
    assert record.organization_id == world.org_a
    assert_origin(record, world["org_admin"], "project-delete")
    assert list(record.details["changes"]) == ["deleted_at"]


async def test_member_add_change_and_remove_are_recorded(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    admin, newcomer = world["org_admin"], world["outsider"]
    members = f"/projects/{world.project_a}/members"
    added = await client.post(
        members,
        json={"user_id": str(newcomer.id), "role": "viewer"},
        headers=sent_by(admin, "member-add"),
    )
    assert added.status_code == 201
    changed = await client.put(
        f"{members}/{newcomer.id}",
        json={"role": "developer", "extra_permissions": ["members:manage"]},
        headers=sent_by(admin, "member-change"),
    )
    assert changed.status_code == 200
    removed = await client.delete(f"{members}/{newcomer.id}", headers=sent_by(admin, "member-rm"))
    assert removed.status_code == 204

    [create] = await records_of(app, "member-add")
    [update] = await records_of(app, "member-change")
    [delete] = await records_of(app, "member-rm")
    assert create.action == "project_member.create"
    assert create.details["values"] == {
        "id": create.resource_id,
        "organization_id": str(world.org_a),
        "project_id": str(world.project_a),
        "user_id": str(newcomer.id),
        "role": "viewer",
        "extra_permissions": [],
    }
    assert (update.action, update.resource_id) == ("project_member.update", create.resource_id)
    assert update.details == {
        "changes": {
            "role": {"old": "viewer", "new": "developer"},
            "extra_permissions": {"old": [], "new": ["members:manage"]},
        }
    }
    assert (delete.action, delete.resource_id) == ("project_member.delete", create.resource_id)
    assert delete.details == {"values": {"id": create.resource_id}}
    for record, request_id in ((create, "member-add"), (update, "member-change")):
        assert record.resource_type == "project_member"
        assert record.organization_id == world.org_a
        assert_origin(record, admin, request_id)
    assert_origin(delete, admin, "member-rm")
    assert delete.organization_id == world.org_a


async def test_membership_change_is_filed_under_the_projects_organization(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    # A super admin of organization A changes a membership of organization B's project.
    response = await client.post(
        f"/projects/{world.project_b}/members",
        json={"user_id": str(world["org_admin_b"].id)},
        headers=sent_by(world["super_admin"], "cross-tenant-member"),
    )
    assert response.status_code == 201
    [record] = await records_of(app, "cross-tenant-member")
    assert record.organization_id == world.org_b
    for admin, sees in (("org_admin_b", True), ("org_admin", False)):
        listed = await client.get(
            "/audit", params={"action": "project_member.create"}, headers=world[admin].headers
        )
        assert (record.id in {uuid.UUID(item["id"]) for item in listed.json()["data"]}) is sees


# --- authentication events -------------------------------------------------------------------


async def test_login_is_recorded_once(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    user = world["user"]
    response = await client.post(
        "/auth/login",
        json={"email": user.email, "password": PASSWORD},
        headers=sent_by(None, "login"),
    )
    assert response.status_code == 200
    # The session and refresh token rows and `last_login_at` are not recorded row by row.
    [record] = await records_of(app, "login")
    assert (record.action, record.resource_type, record.resource_id) == (
        "auth.login",
        "user",
        str(user.id),
    )
    assert record.organization_id == world.org_a
    assert_origin(record, user, "login")
    uuid.UUID(record.details["session_id"])
    assert list(record.details) == ["session_id"]


async def test_failed_login_of_a_known_user_is_recorded(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    user = world["user"]
    response = await client.post(
        "/auth/login",
        json={"email": user.email, "password": "not-the-password"},
        headers=sent_by(None, "login-failed"),
    )
    assert response.status_code == 401
    [record] = await records_of(app, "login-failed")
    assert (record.action, record.resource_type, record.resource_id) == (
        "auth.login_failed",
        "user",
        str(user.id),
    )
    assert record.organization_id == world.org_a
    assert_origin(record, user, "login-failed")
    assert record.details == {"email": user.email, "reason": "invalid_credentials"}


async def test_failed_login_of_an_unknown_email_is_recorded(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        "/auth/login",
        json={"email": "Nobody@Example.com", "password": "whatever-it-is"},
        headers=sent_by(None, "login-unknown"),
    )
    assert response.status_code == 401
    [record] = await records_of(app, "login-unknown")
    assert record.action == "auth.login_failed"
    assert (record.resource_id, record.organization_id) == (None, None)
    assert (record.actor_type, record.actor_id, record.actor_label) == (
        "user",
        None,
        "nobody@example.com",
    )
    assert (record.ip_address, record.user_agent) == ("127.0.0.1", USER_AGENT)
    assert record.details == {"email": "nobody@example.com", "reason": "invalid_credentials"}


async def test_login_of_a_deactivated_user_is_recorded_as_inactive(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    user = world["user"]
    deactivated = await client.put(
        f"/users/{user.id}", json={"is_active": False}, headers=world["org_admin"].headers
    )
    assert deactivated.status_code == 200
    response = await client.post(
        "/auth/login",
        json={"email": user.email, "password": PASSWORD},
        headers=sent_by(None, "login-inactive"),
    )
    assert response.status_code == 401
    [record] = await records_of(app, "login-inactive")
    assert record.details == {"email": user.email, "reason": "inactive"}


@pytest.mark.parametrize("all_sessions", [False, True])
async def test_logout_is_recorded(
    app: FastAPI, client: httpx.AsyncClient, world: World, all_sessions: bool
) -> None:
    user = world["user"]
    response = await client.post(
        "/auth/logout", json={"all_sessions": all_sessions}, headers=sent_by(user, "logout")
    )
    assert response.status_code == 204
    [record] = await records_of(app, "logout")
    assert (record.action, record.resource_type, record.resource_id) == (
        "auth.logout",
        "user",
        str(user.id),
    )
    assert record.organization_id == world.org_a
    assert_origin(record, user, "logout")
    assert record.details["all_sessions"] is all_sessions
    uuid.UUID(record.details["session_id"])


async def test_refresh_token_reuse_is_recorded(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    user = world["user"]
    logged_in = await client.post(
        "/auth/login",
        json={"email": user.email, "password": PASSWORD},
        headers=sent_by(None, "reuse-login"),
    )
    stolen = logged_in.json()["data"]["refresh_token"]
    [login_record] = await records_of(app, "reuse-login")
    rotated = await client.post(
        "/auth/refresh", json={"refresh_token": stolen}, headers=sent_by(None, "refresh")
    )
    assert rotated.status_code == 200
    assert await records_of(app, "refresh") == []
    replay = await client.post(
        "/auth/refresh", json={"refresh_token": stolen}, headers=sent_by(None, "replay")
    )
    assert replay.status_code == 401
    [record] = await records_of(app, "replay")
    assert (record.action, record.resource_type, record.resource_id) == (
        "auth.refresh_token_reused",
        "user",
        str(user.id),
    )
    assert record.organization_id == world.org_a
    assert_origin(record, user, "replay")
    assert record.details == {"session_id": login_record.details["session_id"]}


# --- what is not recorded --------------------------------------------------------------------


REFUSED_WRITES: list[tuple[str, str, str, Any, int]] = [
    ("duplicate organization", "super_admin", "POST /organizations", {"name": "Org B"}, 409),
    ("organization by org admin", "org_admin", "POST /organizations", {"name": "Mine"}, 403),
    ("own organization deleted", "super_admin", "DELETE /organizations/{org_a}", None, 409),
    ("user by project admin", "project_admin", "POST /users", None, 403),
    ("user with short password", "org_admin", "POST /users", {"password": "short"}, 422),
    ("duplicate e-mail", "org_admin", "POST /users", {"email": "user@example.com"}, 409),
    ("own role", "org_admin", "PUT /users/{org_admin}/roles", {"role": "user"}, 409),
    ("role above own", "org_admin", "PUT /users/{user}/roles", {"role": "super_admin"}, 403),
    ("project without name", "project_admin", "POST /projects", {"name": ""}, 422),
    ("project by a user", "user", "POST /projects", {"name": "Nope"}, 403),
    ("project update by developer", "user", "PUT /projects/{project_a}", {"name": "X"}, 403),
    ("last admin removed", "org_admin", "DELETE /projects/{project_a}/members/{pa}", None, 409),
    ("unknown field", "org_admin", "PUT /users/{user}", {"nickname": "x"}, 422),
]


def _fill(template: str, world: World) -> str:
    return template.format(
        org_a=world.org_a,
        project_a=world.project_a,
        org_admin=world["org_admin"].id,
        user=world["user"].id,
        pa=world["project_admin"].id,
    )


@pytest.mark.parametrize(
    ("caller", "route", "body", "status"),
    [case[1:] for case in REFUSED_WRITES],
    ids=[case[0] for case in REFUSED_WRITES],
)
async def test_refused_write_records_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    caller: str,
    route: str,
    body: Any,
    status: int,
) -> None:
    if route == "POST /users":
        body = {
            "email": "fresh@example.com",
            "name": "Fresh",
            "password": "long-enough",
            **(body or {}),
        }
    method, path = route.split(" ")
    before = await record_count(app)
    response = await client.request(
        method, _fill(path, world), json=body, headers=sent_by(world[caller], "refused")
    )
    assert response.status_code == status, response.text
    assert await records_of(app, "refused") == []
    assert await record_count(app) == before


async def test_reads_record_nothing(app: FastAPI, client: httpx.AsyncClient, world: World) -> None:
    before = await record_count(app)
    admin = sent_by(world["super_admin"], "reads")
    paths = [
        "/auth/me",
        "/organizations",
        f"/organizations/{world.org_a}",
        "/users",
        f"/users/{world['user'].id}",
        f"/users/{world['user'].id}/roles",
        "/projects",
        f"/projects/{world.project_a}",
        f"/projects/{world.project_a}/members",
        "/audit",
        "/audit/export",
        "/audit/export?format=csv",
    ]
    for path in paths:
        assert (await client.get(path, headers=admin)).status_code == 200, path
    assert await records_of(app, "reads") == []
    assert await record_count(app) == before


# --- secrets ---------------------------------------------------------------------------------


async def _stored_secrets(app: FastAPI) -> list[str]:
    async with components(app).engine.connect() as connection:
        hashes = await connection.execute(
            text("SELECT password_hash FROM users WHERE password_hash IS NOT NULL")
        )
        tokens = await connection.execute(text("SELECT token_hash FROM refresh_tokens"))
        return [row[0] for row in hashes] + [row[0] for row in tokens]


async def _raw_audit_rows(app: FastAPI) -> str:
    async with components(app).engine.connect() as connection:
        rows = await connection.execute(text("SELECT * FROM audit_records"))
        return json.dumps([list(row) for row in rows], default=str)


async def test_no_secret_ever_reaches_the_trail(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    admin = world["org_admin"].headers
    first, second, third, mistyped = (
        "first-Secret-1111",
        "second-Secret-2222",
        "third-Secret-3333",
        "mistyped-Secret-4444",
    )
    created = await client.post(
        "/users",
        json={"email": "keeper@example.com", "name": "Keeper", "password": first},
        headers=admin,
    )
    assert created.status_code == 201
    keeper_id = created.json()["data"]["id"]
    credentials = {"email": "keeper@example.com", "password": first}
    tokens = (await client.post("/auth/login", json=credentials)).json()["data"]
    own_change = await client.put(
        f"/users/{keeper_id}",
        json={"password": second, "current_password": first},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert own_change.status_code == 200
    reset = await client.put(f"/users/{keeper_id}", json={"password": third}, headers=admin)
    assert reset.status_code == 200
    failed = await client.post(
        "/auth/login", json={"email": "keeper@example.com", "password": mistyped}
    )
    assert failed.status_code == 401
    session = (
        await client.post("/auth/login", json={"email": "keeper@example.com", "password": third})
    ).json()["data"]
    rotated = (
        await client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
    ).json()["data"]
    replay = await client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert replay.status_code == 401

    secrets = [
        PASSWORD,
        first,
        second,
        third,
        mistyped,
        tokens["refresh_token"],
        tokens["access_token"],
        session["refresh_token"],
        rotated["refresh_token"],
        *(account.refresh_token for account in world.accounts.values()),
        *await _stored_secrets(app),
    ]
    super_admin = world["super_admin"].headers
    listing = await client.get("/audit", params={"per_page": 500}, headers=super_admin)
    assert listing.json()["meta"]["next_cursor"] is None
    actions = {record["action"] for record in listing.json()["data"]}
    assert {"user.create", "user.update", "auth.login_failed", "auth.refresh_token_reused"} <= (
        actions
    )
    views = {
        "database": await _raw_audit_rows(app),
        "list": listing.text,
        "jsonl": (await client.get("/audit/export", headers=super_admin)).text,
        "csv": (await client.get("/audit/export?format=csv", headers=super_admin)).text,
    }
    for name, view in views.items():
        assert "keeper@example.com" in view, name
        for secret in secrets:
            assert secret not in view, (name, secret)
