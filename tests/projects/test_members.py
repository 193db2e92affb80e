"""The project members API: listing, adding, changing and removing members, and the rules
that guard them (who may manage members, the last admin, effective permissions)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from budapp.core.components import components
from budapp.core.roles import Permission, ProjectRole, Role
from budapp.projects.models import Project, ProjectMember
from budapp.users.models import User
from tests.factories import Account, World, create_account
from tests.projects.expected import ALL_PERMISSIONS, DEVELOPER_PERMISSIONS, VIEWER_PERMISSIONS

MISSING = object()


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


async def stored_member(
    app: FastAPI, project_id: uuid.UUID, user_id: uuid.UUID
) -> ProjectMember | None:
    async with components(app).session_factory() as session:
        return await session.scalar(
            select(ProjectMember).where(
                ProjectMember.project_id == project_id, ProjectMember.user_id == user_id
            )
        )


async def enroll(
    app: FastAPI,
    project_id: uuid.UUID,
    user_id: uuid.UUID,
    role: ProjectRole,
    extra_permissions: list[str] | None = None,
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
                extra_permissions=extra_permissions or [],
            )
        )
        await session.commit()


async def new_user(app: FastAPI, world: World) -> Account:
    return await create_account(app, world.org_a, "newcomer@example.com", Role.USER)


def members_by_id(response: httpx.Response) -> dict[str, dict[str, Any]]:
    return {member["user_id"]: member for member in response.json()["data"]}


def members_url(project_id: uuid.UUID, user_id: uuid.UUID | None = None) -> str:
    url = f"/projects/{project_id}/members"
    return url if user_id is None else f"{url}/{user_id}"


# --- listing -------------------------------------------------------------------------------


async def test_members_list_shows_each_member_with_role_and_permissions(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(
        members_url(world.project_a), headers=world["project_admin"].headers
    )
    assert response.status_code == 200
    body = response.json()
    assert body["meta"] == {"total": 2}
    members = members_by_id(response)
    admin = members[str(world["project_admin"].id)]
    assert admin["email"] == "project_admin@example.com"
    assert admin["name"] == "project_admin@example.com"
    assert (admin["role"], admin["extra_permissions"], admin["permissions"]) == (
        "admin",
        [],
        ALL_PERMISSIONS,
    )
    developer = members[str(world["user"].id)]
    assert (developer["role"], developer["permissions"]) == ("developer", DEVELOPER_PERMISSIONS)
    assert "created_at" in developer


@pytest.mark.parametrize("role", list(ProjectRole))
async def test_every_project_role_can_list_members(
    app: FastAPI, client: httpx.AsyncClient, world: World, role: ProjectRole
) -> None:
    await enroll(app, world.project_a, world["outsider"].id, role)
    response = await client.get(members_url(world.project_a), headers=world["outsider"].headers)
    assert response.status_code == 200
    assert response.json()["meta"]["total"] == 3


async def test_members_list_omits_deleted_users(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    async with components(app).session_factory() as session:
        await session.execute(
            update(User).where(User.id == world["user"].id).values(deleted_at=User.created_at)
        )
        await session.commit()
    response = await client.get(
        members_url(world.project_a), headers=world["project_admin"].headers
    )
    assert list(members_by_id(response)) == [str(world["project_admin"].id)]


# --- effective permissions -----------------------------------------------------------------


async def test_member_permissions_are_role_defaults_plus_extra_permissions(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        members_url(world.project_a),
        json={
            "user_id": str(world["outsider"].id),
            "role": "viewer",
            "extra_permissions": ["members:manage", "endpoint:manage"],
        },
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["extra_permissions"] == ["endpoint:manage", "members:manage"]
    assert data["permissions"] == sorted([*VIEWER_PERMISSIONS, "members:manage", "endpoint:manage"])
    listed = await client.get(members_url(world.project_a), headers=world["outsider"].headers)
    assert members_by_id(listed)[str(world["outsider"].id)]["permissions"] == data["permissions"]


async def test_extra_permission_already_in_the_role_adds_nothing(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        members_url(world.project_a),
        json={
            "user_id": str(world["outsider"].id),
            "role": "developer",
            "extra_permissions": ["endpoint:manage"],
        },
        headers=world["project_admin"].headers,
    )
    assert response.json()["data"]["permissions"] == DEVELOPER_PERMISSIONS


async def test_repeated_extra_permissions_are_stored_once(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        members_url(world.project_a),
        json={
            "user_id": str(world["outsider"].id),
            "extra_permissions": ["model:manage", "model:manage"],
        },
        headers=world["project_admin"].headers,
    )
    assert response.json()["data"]["extra_permissions"] == ["model:manage"]
    member = await stored_member(app, world.project_a, world["outsider"].id)
    assert member is not None
    assert member.extra_permissions == ["model:manage"]


async def test_me_reports_effective_permissions_of_each_membership(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    await enroll(app, world.project_a, world["outsider"].id, ProjectRole.VIEWER, ["project:manage"])
    response = await client.get("/auth/me", headers=world["outsider"].headers)
    [membership] = response.json()["data"]["projects"]
    assert membership["role"] == "viewer"
    assert membership["permissions"] == sorted([*VIEWER_PERMISSIONS, "project:manage"])


@pytest.mark.parametrize(
    ("extra", "method", "path", "body", "status"),
    [
        ("members:manage", "POST", "/projects/{project}/members", {"user_id": "{target}"}, 201),
        ("members:manage", "DELETE", "/projects/{project}/members/{user}", None, 204),
        ("project:manage", "PUT", "/projects/{project}", {"name": "Renamed by viewer"}, 200),
        ("project:manage", "DELETE", "/projects/{project}", None, 204),
    ],
)
async def test_extra_permission_grants_what_the_role_lacks(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    extra: str,
    method: str,
    path: str,
    body: dict[str, str] | None,
    status: int,
) -> None:
    await enroll(app, world.project_a, world["outsider"].id, ProjectRole.VIEWER, [extra])
    target = await new_user(app, world)
    url = path.format(project=world.project_a, user=world["user"].id)
    if body is not None:
        body = {key: value.format(target=target.id) for key, value in body.items()}
    response = await client.request(method, url, json=body, headers=world["outsider"].headers)
    assert response.status_code == status


# --- who may manage members ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/projects/{project}/members", {"user_id": "{target}", "role": "admin"}),
        ("PUT", "/projects/{project}/members/{user}", {"role": "admin"}),
        ("PUT", "/projects/{project}/members/{self}", {"extra_permissions": ["members:manage"]}),
        ("DELETE", "/projects/{project}/members/{user}", None),
    ],
)
@pytest.mark.parametrize("role", [ProjectRole.VIEWER, ProjectRole.DEVELOPER])
async def test_viewer_or_developer_cannot_manage_members(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    role: ProjectRole,
) -> None:
    caller = world["outsider"]
    await enroll(app, world.project_a, caller.id, role)
    target = await new_user(app, world)
    url = path.format(project=world.project_a, user=world["user"].id, self=caller.id)
    if body is not None and "user_id" in body:
        body = {**body, "user_id": str(target.id)}
    before = await stored(app)
    response = await client.request(method, url, json=body, headers=caller.headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert await stored(app) == before


@pytest.mark.parametrize("account", ["project_admin", "org_admin", "super_admin"])
async def test_project_admin_or_org_admin_adds_a_member(
    app: FastAPI, client: httpx.AsyncClient, world: World, account: str
) -> None:
    target = world["outsider"]
    response = await client.post(
        members_url(world.project_a),
        json={"user_id": str(target.id), "role": "viewer"},
        headers=world[account].headers,
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["user_id"] == str(target.id)
    assert data["email"] == target.email
    assert (data["role"], data["extra_permissions"], data["permissions"]) == (
        "viewer",
        [],
        VIEWER_PERMISSIONS,
    )
    member = await stored_member(app, world.project_a, target.id)
    assert member is not None
    assert member.role is ProjectRole.VIEWER


async def test_added_member_defaults_to_developer(client: httpx.AsyncClient, world: World) -> None:
    response = await client.post(
        members_url(world.project_a),
        json={"user_id": str(world["outsider"].id)},
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 201
    assert response.json()["data"]["role"] == "developer"
    assert response.json()["data"]["permissions"] == DEVELOPER_PERMISSIONS


async def test_added_member_gains_access_to_the_project(
    client: httpx.AsyncClient, world: World
) -> None:
    outsider = world["outsider"]
    await client.post(
        members_url(world.project_a),
        json={"user_id": str(outsider.id), "role": "viewer"},
        headers=world["project_admin"].headers,
    )
    listing = await client.get("/projects", headers=outsider.headers)
    assert [project["id"] for project in listing.json()["data"]] == [str(world.project_a)]
    read = await client.get(f"/projects/{world.project_a}", headers=outsider.headers)
    assert read.status_code == 200


# --- adding: refusals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "project", "user"),
    [
        ("project_admin", "project_a", "user_b"),
        ("org_admin", "project_a", "org_admin_b"),
        ("super_admin", "project_b", "outsider"),
        ("super_admin", "project_a", "user_b"),
    ],
)
async def test_adding_a_user_of_another_organization_is_404(
    app: FastAPI, client: httpx.AsyncClient, world: World, account: str, project: str, user: str
) -> None:
    before = await stored(app)
    response = await client.post(
        members_url(getattr(world, project)),
        json={"user_id": str(world[user].id)},
        headers=world[account].headers,
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert await stored(app) == before


async def test_adding_an_unknown_user_is_404(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    before = await stored(app)
    response = await client.post(
        members_url(world.project_a),
        json={"user_id": str(uuid.uuid4())},
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 404
    assert await stored(app) == before


async def test_adding_a_deleted_user_is_404(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    target = await new_user(app, world)
    async with components(app).session_factory() as session:
        await session.execute(
            update(User).where(User.id == target.id).values(deleted_at=User.created_at)
        )
        await session.commit()
    before = await stored(app)
    response = await client.post(
        members_url(world.project_a),
        json={"user_id": str(target.id)},
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 404
    assert await stored(app) == before


@pytest.mark.parametrize("account", ["user", "project_admin"])
async def test_adding_an_existing_member_is_409(
    app: FastAPI, client: httpx.AsyncClient, world: World, account: str
) -> None:
    before = await stored(app)
    response = await client.post(
        members_url(world.project_a),
        json={"user_id": str(world[account].id), "role": "viewer"},
        headers=world["org_admin"].headers,
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"
    assert await stored(app) == before


async def test_concurrent_adds_of_one_user_store_one_membership(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    body = {"user_id": str(world["outsider"].id)}
    headers = world["project_admin"].headers
    responses = await asyncio.gather(
        *(client.post(members_url(world.project_a), json=body, headers=headers) for _ in range(4))
    )
    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409]
    assert await stored_member(app, world.project_a, world["outsider"].id) is not None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"extra_permissions": ["project:delete"]}, "extra_permissions.0"),
        ({"extra_permissions": ["PROJECT:VIEW"]}, "extra_permissions.0"),
        ({"extra_permissions": ["model:view", "everything"]}, "extra_permissions.1"),
        ({"extra_permissions": "model:view"}, "extra_permissions"),
        ({"extra_permissions": ["model:view"] * (len(Permission) + 1)}, "extra_permissions"),
        ({"role": "owner"}, "role"),
        ({"role": "ADMIN"}, "role"),
        ({"role": 1}, "role"),
        ({"user_id": "not-a-uuid"}, "user_id"),
        ({"user_id": MISSING}, "user_id"),
        ({"permissions": ["model:view"]}, "permissions"),
    ],
)
async def test_invalid_member_to_add_is_422(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    overrides: dict[str, Any],
    field: str,
) -> None:
    body = {"user_id": str(world["outsider"].id), "role": "viewer", **overrides}
    body = {key: value for key, value in body.items() if value is not MISSING}
    before = await stored(app)
    response = await client.post(
        members_url(world.project_a), json=body, headers=world["project_admin"].headers
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert [detail["field"] for detail in response.json()["error"]["details"]] == [field]
    assert await stored(app) == before


# --- changing a member ---------------------------------------------------------------------


async def test_member_role_and_extra_permissions_can_be_changed(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    response = await client.put(
        members_url(world.project_a, world["user"].id),
        json={"role": "viewer", "extra_permissions": ["model:manage"]},
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["user_id"] == str(world["user"].id)
    assert data["email"] == world["user"].email
    assert (data["role"], data["extra_permissions"], data["permissions"]) == (
        "viewer",
        ["model:manage"],
        sorted([*VIEWER_PERMISSIONS, "model:manage"]),
    )
    member = await stored_member(app, world.project_a, world["user"].id)
    assert member is not None
    assert (member.role, member.extra_permissions) == (ProjectRole.VIEWER, ["model:manage"])


@pytest.mark.parametrize(
    ("body", "role", "extra"),
    [
        ({}, "developer", ["router:manage"]),
        ({"role": "viewer"}, "viewer", ["router:manage"]),
        ({"extra_permissions": []}, "developer", []),
        ({"role": None, "extra_permissions": None}, "developer", ["router:manage"]),
    ],
)
async def test_member_update_leaves_omitted_fields_unchanged(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    body: dict[str, Any],
    role: str,
    extra: list[str],
) -> None:
    url = members_url(world.project_a, world["user"].id)
    headers = world["project_admin"].headers
    await client.put(url, json={"extra_permissions": ["router:manage"]}, headers=headers)
    response = await client.put(url, json=body, headers=headers)
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["role"], data["extra_permissions"]) == (role, extra)
    member = await stored_member(app, world.project_a, world["user"].id)
    assert member is not None
    assert (member.role.value, member.extra_permissions) == (role, extra)


async def test_changed_role_takes_effect_on_access(client: httpx.AsyncClient, world: World) -> None:
    await client.put(
        members_url(world.project_a, world["user"].id),
        json={"role": "admin"},
        headers=world["project_admin"].headers,
    )
    response = await client.put(
        f"/projects/{world.project_a}",
        json={"description": "By the promoted user"},
        headers=world["user"].headers,
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "owner"}, "role"),
        ({"extra_permissions": ["nope"]}, "extra_permissions.0"),
        ({"extra_permissions": "members:manage"}, "extra_permissions"),
        ({"user_id": str(uuid.uuid4())}, "user_id"),
    ],
)
async def test_invalid_member_update_is_422(
    app: FastAPI, client: httpx.AsyncClient, world: World, body: dict[str, Any], field: str
) -> None:
    before = await stored(app)
    response = await client.put(
        members_url(world.project_a, world["user"].id),
        json=body,
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 422
    assert [detail["field"] for detail in response.json()["error"]["details"]] == [field]
    assert await stored(app) == before


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
@pytest.mark.parametrize("user", ["outsider", "user_b", "unknown"])
async def test_changing_a_non_member_is_404(
    app: FastAPI, client: httpx.AsyncClient, world: World, method: str, user: str
) -> None:
    user_id = uuid.uuid4() if user == "unknown" else world[user].id
    before = await stored(app)
    response = await client.request(
        method,
        members_url(world.project_a, user_id),
        json={"role": "viewer"},
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert await stored(app) == before


# --- the last admin ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["developer", "viewer"])
@pytest.mark.parametrize("account", ["project_admin", "org_admin"])
async def test_last_admin_cannot_be_demoted(
    app: FastAPI, client: httpx.AsyncClient, world: World, role: str, account: str
) -> None:
    before = await stored(app)
    response = await client.put(
        members_url(world.project_a, world["project_admin"].id),
        json={"role": role},
        headers=world[account].headers,
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"
    assert await stored(app) == before


@pytest.mark.parametrize("account", ["project_admin", "org_admin"])
async def test_last_admin_cannot_be_removed(
    app: FastAPI, client: httpx.AsyncClient, world: World, account: str
) -> None:
    before = await stored(app)
    response = await client.delete(
        members_url(world.project_a, world["project_admin"].id), headers=world[account].headers
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"
    assert await stored(app) == before


async def test_last_admin_may_change_their_extra_permissions(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.put(
        members_url(world.project_a, world["project_admin"].id),
        json={"role": "admin", "extra_permissions": ["model:manage"]},
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 200
    assert response.json()["data"]["role"] == "admin"


async def test_admin_can_be_demoted_while_another_admin_remains(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    await enroll(app, world.project_a, world["outsider"].id, ProjectRole.ADMIN)
    response = await client.put(
        members_url(world.project_a, world["project_admin"].id),
        json={"role": "viewer"},
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 200
    member = await stored_member(app, world.project_a, world["project_admin"].id)
    assert member is not None
    assert member.role is ProjectRole.VIEWER


async def test_admin_can_be_removed_while_another_admin_remains(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    await enroll(app, world.project_a, world["outsider"].id, ProjectRole.ADMIN)
    response = await client.delete(
        members_url(world.project_a, world["project_admin"].id),
        headers=world["outsider"].headers,
    )
    assert response.status_code == 204
    assert await stored_member(app, world.project_a, world["project_admin"].id) is None


@pytest.mark.parametrize("gone", ["deleted", "deactivated"])
async def test_an_admin_who_cannot_act_does_not_count_as_the_other_admin(
    app: FastAPI, client: httpx.AsyncClient, world: World, gone: str
) -> None:
    await enroll(app, world.project_a, world["outsider"].id, ProjectRole.ADMIN)
    headers = world["org_admin"].headers
    user_url = f"/users/{world['outsider'].id}"
    if gone == "deleted":
        response = await client.delete(user_url, headers=headers)
    else:
        response = await client.put(user_url, json={"is_active": False}, headers=headers)
    assert response.status_code in {200, 204}, response.text
    demoted = await client.put(
        members_url(world.project_a, world["project_admin"].id),
        json={"role": "developer"},
        headers=headers,
    )
    assert demoted.status_code == 409
    # The one who cannot act may itself leave: an active admin remains.
    removed = await client.delete(
        members_url(world.project_a, world["outsider"].id), headers=headers
    )
    assert removed.status_code == 204


async def test_second_of_two_admins_cannot_then_be_demoted(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    await enroll(app, world.project_a, world["outsider"].id, ProjectRole.ADMIN)
    headers = world["org_admin"].headers
    first = await client.put(
        members_url(world.project_a, world["project_admin"].id),
        json={"role": "developer"},
        headers=headers,
    )
    assert first.status_code == 200
    second = await client.put(
        members_url(world.project_a, world["outsider"].id),
        json={"role": "developer"},
        headers=headers,
    )
    assert second.status_code == 409


@pytest.mark.parametrize(
    ("method", "body", "status"), [("DELETE", None, 204), ("PUT", {"role": "developer"}, 200)]
)
async def test_concurrent_changes_to_two_admins_keep_one(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    method: str,
    body: dict[str, str] | None,
    status: int,
) -> None:
    await enroll(app, world.project_a, world["outsider"].id, ProjectRole.ADMIN)
    headers = world["org_admin"].headers
    responses = await asyncio.gather(
        *(
            client.request(method, members_url(world.project_a, admin), json=body, headers=headers)
            for admin in (world["project_admin"].id, world["outsider"].id)
        )
    )
    assert sorted(response.status_code for response in responses) == [status, 409]
    listing = await client.get(members_url(world.project_a), headers=headers)
    assert [member["role"] for member in listing.json()["data"]].count("admin") == 1


# --- removing a member ---------------------------------------------------------------------


async def test_removed_member_loses_access_to_the_project(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    user = world["user"]
    response = await client.delete(
        members_url(world.project_a, user.id), headers=world["project_admin"].headers
    )
    assert response.status_code == 204
    assert response.content == b""
    assert await stored_member(app, world.project_a, user.id) is None
    assert (
        await client.get(f"/projects/{world.project_a}", headers=user.headers)
    ).status_code == 404
    assert (await client.get("/projects", headers=user.headers)).json()["data"] == []
    me = await client.get("/auth/me", headers=user.headers)
    assert me.json()["data"]["projects"] == []


async def test_removed_member_is_no_longer_listed(client: httpx.AsyncClient, world: World) -> None:
    headers = world["project_admin"].headers
    await client.delete(members_url(world.project_a, world["user"].id), headers=headers)
    response = await client.get(members_url(world.project_a), headers=headers)
    assert list(members_by_id(response)) == [str(world["project_admin"].id)]
    assert response.json()["meta"] == {"total": 1}


async def test_removed_member_can_be_added_again(client: httpx.AsyncClient, world: World) -> None:
    headers = world["project_admin"].headers
    await client.delete(members_url(world.project_a, world["user"].id), headers=headers)
    response = await client.post(
        members_url(world.project_a),
        json={"user_id": str(world["user"].id), "role": "viewer"},
        headers=headers,
    )
    assert response.status_code == 201


# --- hidden projects and bad paths ---------------------------------------------------------

MEMBER_ROUTES = [
    ("GET", "/projects/{project}/members", None),
    ("POST", "/projects/{project}/members", {"user_id": "{user}"}),
    ("PUT", "/projects/{project}/members/{user}", {"role": "viewer"}),
    ("DELETE", "/projects/{project}/members/{user}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), MEMBER_ROUTES)
@pytest.mark.parametrize("account", ["org_admin", "project_admin", "user"])
async def test_members_of_a_project_of_another_organization_are_404(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    method: str,
    path: str,
    body: dict[str, str] | None,
    account: str,
) -> None:
    user_id = world["user_b"].id
    url = path.format(project=world.project_b, user=user_id)
    if body is not None:
        body = {key: value.format(user=user_id) for key, value in body.items()}
    before = await stored(app)
    response = await client.request(method, url, json=body, headers=world[account].headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert await stored(app) == before


@pytest.mark.parametrize(("method", "path", "body"), MEMBER_ROUTES)
async def test_members_of_a_project_are_404_to_a_non_member_of_the_same_organization(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    user_id = world["user"].id
    url = path.format(project=world.project_a, user=user_id)
    if body is not None:
        body = {key: value.format(user=world["outsider"].id) for key, value in body.items()}
    before = await stored(app)
    response = await client.request(method, url, json=body, headers=world["outsider"].headers)
    assert response.status_code == 404
    assert await stored(app) == before


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", "/projects/not-a-uuid/members", "project_id"),
        ("POST", "/projects/not-a-uuid/members", "project_id"),
        ("PUT", "/projects/not-a-uuid/members/{user}", "project_id"),
        ("DELETE", "/projects/not-a-uuid/members/{user}", "project_id"),
        ("PUT", "/projects/{project}/members/not-a-uuid", "user_id"),
        ("DELETE", "/projects/{project}/members/not-a-uuid", "user_id"),
    ],
)
async def test_invalid_uuid_in_members_path_is_422(
    app: FastAPI, client: httpx.AsyncClient, world: World, method: str, path: str, field: str
) -> None:
    url = path.format(project=world.project_a, user=world["user"].id)
    bodies = {"POST": {"user_id": str(world["outsider"].id)}, "PUT": {"role": "viewer"}}
    body = bodies.get(method)
    before = await stored(app)
    response = await client.request(method, url, json=body, headers=world["org_admin"].headers)
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert [(detail["in"], detail["field"]) for detail in details] == [("path", field)]
    assert await stored(app) == before
