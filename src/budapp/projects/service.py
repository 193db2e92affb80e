from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.auth import Principal, system_scope
from budapp.core.db import utcnow
from budapp.core.envelope import Page
from budapp.core.errors import Conflict, Forbidden, NotFound
from budapp.core.references import ReferenceGuard
from budapp.core.roles import ROLE_PERMISSIONS, Permission, ProjectRole, Role
from budapp.organizations.service import OrganizationService
from budapp.projects.models import Project, ProjectMember
from budapp.projects.repository import ProjectRepository
from budapp.projects.schemas import (
    MemberAdd,
    MemberRead,
    Membership,
    MemberUpdate,
    ProjectCreate,
    ProjectFilter,
    ProjectRead,
    ProjectUpdate,
)
from budapp.users.models import User
from budapp.users.service import UserService

ALL_PERMISSIONS = frozenset(Permission)


@dataclass(frozen=True, slots=True)
class ProjectAccess:
    """A project as seen by one caller, with what that caller may do in it."""

    project: Project
    principal: Principal
    permissions: frozenset[Permission]

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise Forbidden(f"Requires the {permission.value} permission on this project")


def effective_permissions(member: ProjectMember) -> frozenset[Permission]:
    return ROLE_PERMISSIONS[member.role] | {Permission(p) for p in member.extra_permissions}


class ProjectService:
    def __init__(
        self,
        session: AsyncSession,
        users: UserService,
        organizations: OrganizationService,
        references: ReferenceGuard,
    ) -> None:
        self.session = session
        self.repository = ProjectRepository(session)
        self.users = users
        self.organizations = organizations
        self.references = references

    # --- access ----------------------------------------------------------------------------

    async def access(
        self, project_id: uuid.UUID, principal: Principal, permission: Permission
    ) -> ProjectAccess:
        """The project if the caller may see it (else NOT_FOUND, so that its existence does
        not leak) and holds `permission` on it (else FORBIDDEN)."""
        project = await self.repository.get(principal.scope, project_id)
        if project is None:
            raise NotFound("project", project_id)
        if principal.has_role(Role.ORG_ADMIN):
            permissions = ALL_PERMISSIONS
        else:
            member = await self.repository.member(project.id, principal.user_id)
            if member is None:
                raise NotFound("project", project_id)
            permissions = effective_permissions(member)
        access = ProjectAccess(project, principal, permissions)
        access.require(permission)
        return access

    async def require_in_any_project(self, principal: Principal, permission: Permission) -> None:
        """For resources of the whole organisation (models, datasets): org admins hold every
        permission; others need `permission` in at least one of their projects."""
        if principal.has_role(Role.ORG_ADMIN):
            return
        memberships = await self.repository.memberships(principal.user_id)
        if not any(permission in effective_permissions(m) for m, _ in memberships):
            raise Forbidden(f"Requires the {permission.value} permission in a project")

    # --- projects --------------------------------------------------------------------------

    async def page(self, principal: Principal, filters: ProjectFilter) -> Page[ProjectRead]:
        member_id = None if principal.has_role(Role.ORG_ADMIN) else principal.user_id
        rows, total = await self.repository.page(principal.scope, filters, member_id=member_id)
        return Page([ProjectRead.model_validate(row) for row in rows], total, filters)

    async def create(self, by: Principal, data: ProjectCreate) -> ProjectRead:
        organization_id = data.organization_id or by.organization_id
        await self.organizations.get(by.scope, organization_id)
        await self._ensure_name_free(organization_id, data.name)
        project = Project(
            organization_id=organization_id,
            name=data.name,
            description=data.description,
            settings=data.settings,
            owner_id=by.user_id,
        )
        self.repository.add(project)
        await self.session.flush()
        # A super admin creating a project in another tenant does not become its member.
        if organization_id == by.organization_id:
            self.repository.add(
                ProjectMember(
                    organization_id=project.organization_id,
                    project_id=project.id,
                    user_id=by.user_id,
                    role=ProjectRole.ADMIN,
                )
            )
            await self.session.flush()
        return ProjectRead.model_validate(project)

    async def update(self, access: ProjectAccess, data: ProjectUpdate) -> ProjectRead:
        project = access.project
        if data.name is not None and data.name != project.name:
            await self._ensure_name_free(project.organization_id, data.name, excluding=project.id)
            project.name = data.name
        if "description" in data.model_fields_set:
            project.description = data.description
        if data.settings is not None:
            project.settings = data.settings
        await self.session.flush()
        return ProjectRead.model_validate(project)

    async def delete(self, access: ProjectAccess) -> None:
        project = access.project
        await self.references.ensure_unreferenced("project", self.session, project.id)
        project.deleted_at = utcnow()
        await self.session.flush()

    # --- members ---------------------------------------------------------------------------

    async def members(self, access: ProjectAccess) -> list[MemberRead]:
        members = await self.repository.members(access.project.id)
        users = await self.users.get_many(system_scope(), [m.user_id for m in members])
        return [_member_read(m, users[m.user_id]) for m in members if m.user_id in users]

    async def add_member(self, access: ProjectAccess, data: MemberAdd) -> MemberRead:
        project = access.project
        user = await self._user_of_project_organization(project, data.user_id)
        if await self.repository.member(project.id, user.id) is not None:
            raise Conflict("The user is already a member of this project")
        member = ProjectMember(
            organization_id=project.organization_id,
            project_id=project.id,
            user_id=user.id,
            role=data.role,
            extra_permissions=sorted(p.value for p in set(data.extra_permissions)),
        )
        self.repository.add(member)
        await self.session.flush()
        return _member_read(member, user)

    async def update_member(
        self, access: ProjectAccess, user_id: uuid.UUID, data: MemberUpdate
    ) -> MemberRead:
        member = await self._member(access.project, user_id)
        if data.role is not None and data.role is not member.role:
            if member.role is ProjectRole.ADMIN:
                await self._ensure_not_last_admin(access.project, user_id)
            member.role = data.role
        if data.extra_permissions is not None:
            member.extra_permissions = sorted(p.value for p in set(data.extra_permissions))
        await self.session.flush()
        user = await self.users.get(system_scope(), user_id)
        return _member_read(member, user)

    async def remove_member(self, access: ProjectAccess, user_id: uuid.UUID) -> None:
        member = await self._member(access.project, user_id)
        if member.role is ProjectRole.ADMIN:
            await self._ensure_not_last_admin(access.project, user_id)
        await self.repository.remove_member(member)

    async def memberships(self, user_id: uuid.UUID) -> list[Membership]:
        return [
            Membership(
                project_id=project.id,
                project_name=project.name,
                role=member.role,
                permissions=sorted(effective_permissions(member)),
            )
            for member, project in await self.repository.memberships(user_id)
        ]

    # --- rules -----------------------------------------------------------------------------

    async def _member(self, project: Project, user_id: uuid.UUID) -> ProjectMember:
        member = await self.repository.member(project.id, user_id)
        if member is None:
            raise NotFound("project member", user_id)
        return member

    async def _user_of_project_organization(self, project: Project, user_id: uuid.UUID) -> User:
        users = await self.users.get_many(system_scope(), [user_id])
        user = users.get(user_id)
        if user is None or user.organization_id != project.organization_id:
            raise NotFound("user", user_id)
        return user

    async def _ensure_not_last_admin(self, project: Project, leaving: uuid.UUID) -> None:
        """Another admin who can still act (an active, not deleted user) must remain."""
        # Without the lock, two requests removing two admins at once would each see the other.
        await self.repository.lock(project.id)
        admins = await self.repository.admin_ids(project.id, excluding=leaving)
        live = await self.users.get_many(system_scope(), admins)
        if not any(user.is_active for user in live.values()):
            raise Conflict("A project must keep at least one active admin")

    async def _ensure_name_free(
        self, organization_id: uuid.UUID, name: str, excluding: uuid.UUID | None = None
    ) -> None:
        if await self.repository.name_taken(organization_id, name, excluding=excluding):
            raise Conflict(f"A project named {name!r} already exists in this organization")


def _member_read(member: ProjectMember, user: User) -> MemberRead:
    return MemberRead(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=member.role,
        extra_permissions=[Permission(p) for p in member.extra_permissions],
        permissions=sorted(effective_permissions(member)),
        created_at=member.created_at,
    )


async def projects_in_organization(session: AsyncSession, organization_id: uuid.UUID) -> str | None:
    count = await ProjectRepository(session).count_in_organization(organization_id)
    return f"{count} project(s)" if count else None
