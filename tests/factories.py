"""Builds the cast every API test needs: two organizations, a user of each role, a project,
and logged-in clients' headers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI

from budapp.core.components import PASSWORD_HASHER, components
from budapp.core.references import ReferenceGuard
from budapp.core.roles import ProjectRole, Role
from budapp.organizations.schemas import OrganizationCreate
from budapp.organizations.service import OrganizationService
from budapp.projects.models import Project, ProjectMember
from budapp.users.service import UserService

PASSWORD = "correct-horse-battery"


@dataclass
class Account:
    id: uuid.UUID
    email: str
    organization_id: uuid.UUID
    role: Role
    token: str = ""
    refresh_token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    org_a: uuid.UUID
    org_b: uuid.UUID
    accounts: dict[str, Account] = field(default_factory=dict)
    project_a: uuid.UUID = field(default_factory=uuid.uuid4)
    project_b: uuid.UUID = field(default_factory=uuid.uuid4)

    def __getitem__(self, name: str) -> Account:
        return self.accounts[name]


async def create_account(
    app: FastAPI, organization_id: uuid.UUID, email: str, role: Role, password: str = PASSWORD
) -> Account:
    async with components(app).session_factory() as session:
        users = UserService(
            session,
            components(app)[PASSWORD_HASHER],
            OrganizationService(session, ReferenceGuard()),
        )
        user = await users.create_account(
            organization_id=organization_id, email=email, name=email, password=password, role=role
        )
        await session.commit()
        return Account(user.id, email, organization_id, role)


async def create_organization(app: FastAPI, name: str) -> uuid.UUID:
    async with components(app).session_factory() as session:
        organization = await OrganizationService(session, ReferenceGuard()).create(
            OrganizationCreate(name=name)
        )
        await session.commit()
        return organization.id


async def create_project(
    app: FastAPI, organization_id: uuid.UUID, name: str, members: dict[uuid.UUID, ProjectRole]
) -> uuid.UUID:
    async with components(app).session_factory() as session:
        project = Project(organization_id=organization_id, name=name, settings={})
        session.add(project)
        await session.flush()
        for user_id, role in members.items():
            session.add(
                ProjectMember(
                    organization_id=organization_id,
                    project_id=project.id,
                    user_id=user_id,
                    role=role,
                )
            )
        await session.commit()
        return project.id


async def login(client: httpx.AsyncClient, account: Account, password: str = PASSWORD) -> Account:
    response = await client.post("/auth/login", json={"email": account.email, "password": password})
    assert response.status_code == 200, response.text
    tokens = response.json()["data"]
    account.token = tokens["access_token"]
    account.refresh_token = tokens["refresh_token"]
    return account


async def build_world(app: FastAPI, client: httpx.AsyncClient) -> World:
    """Organization A: super_admin, org_admin, project_admin, user (member of project A as
    developer), outsider (a user of A in no project). Organization B: org_admin_b, user_b and
    project B."""
    world = World(
        org_a=await create_organization(app, "Org A"),
        org_b=await create_organization(app, "Org B"),
    )
    cast = {
        "super_admin": (world.org_a, Role.SUPER_ADMIN),
        "org_admin": (world.org_a, Role.ORG_ADMIN),
        "project_admin": (world.org_a, Role.PROJECT_ADMIN),
        "user": (world.org_a, Role.USER),
        "outsider": (world.org_a, Role.USER),
        "org_admin_b": (world.org_b, Role.ORG_ADMIN),
        "user_b": (world.org_b, Role.USER),
    }
    for name, (organization_id, role) in cast.items():
        account = await create_account(app, organization_id, f"{name}@example.com", role)
        world.accounts[name] = await login(client, account)
    world.project_a = await create_project(
        app,
        world.org_a,
        "Project A",
        {world["project_admin"].id: ProjectRole.ADMIN, world["user"].id: ProjectRole.DEVELOPER},
    )
    world.project_b = await create_project(
        app, world.org_b, "Project B", {world["user_b"].id: ProjectRole.ADMIN}
    )
    return world
