from __future__ import annotations

import uuid

from sqlalchemy import Select, delete, func, select, update

from budapp.core.auth import TenantScope
from budapp.core.repository import (
    Repository,
    equal,
    fetch_page,
    name_taken,
    narrowed,
    search,
)
from budapp.core.roles import ProjectRole
from budapp.projects.models import Project, ProjectMember
from budapp.projects.schemas import ProjectFilter

_FILTERS = (
    equal("organization_id", Project.organization_id),
    search("search", Project.name),
)


class ProjectRepository(Repository):
    def _scoped(self, scope: TenantScope) -> Select[Project]:
        return select(Project).where(
            Project.deleted_at.is_(None), scope.where(Project.organization_id)
        )

    async def get(self, scope: TenantScope, project_id: uuid.UUID) -> Project | None:
        return await self.session.scalar(self._scoped(scope).where(Project.id == project_id))

    async def page(
        self,
        scope: TenantScope,
        filters: ProjectFilter,
        *,
        member_id: uuid.UUID | None = None,
    ) -> tuple[list[Project], int]:
        """Projects in scope; only those `member_id` belongs to when given."""
        statement = self._scoped(scope)
        if member_id is not None:
            statement = statement.join(
                ProjectMember,
                (ProjectMember.project_id == Project.id) & (ProjectMember.user_id == member_id),
            )
        statement = narrowed(statement, filters, _FILTERS)
        statement = statement.order_by(Project.created_at.desc(), Project.id.desc())
        return await fetch_page(self.session, statement, filters)

    async def name_taken(
        self, organization_id: uuid.UUID, name: str, *, excluding: uuid.UUID | None = None
    ) -> bool:
        return await name_taken(
            self.session, Project, name, excluding=excluding, organization_id=organization_id
        )

    async def count_in_organization(self, organization_id: uuid.UUID) -> int:
        statement = select(func.count()).where(
            Project.deleted_at.is_(None), Project.organization_id == organization_id
        )
        return int(await self.session.scalar(statement) or 0)

    # --- members ---------------------------------------------------------------------------

    async def member(self, project_id: uuid.UUID, user_id: uuid.UUID) -> ProjectMember | None:
        statement = select(ProjectMember).where(
            ProjectMember.project_id == project_id, ProjectMember.user_id == user_id
        )
        return await self.session.scalar(statement)

    async def members(self, project_id: uuid.UUID) -> list[ProjectMember]:
        statement = (
            select(ProjectMember)
            .where(ProjectMember.project_id == project_id)
            .order_by(ProjectMember.created_at, ProjectMember.id)
        )
        return list((await self.session.scalars(statement)).all())

    async def lock(self, project_id: uuid.UUID) -> None:
        """Makes concurrent member changes of one project run one after another, so that a
        count read afterwards sees the other's result. A write that changes nothing rather
        than SELECT ... FOR UPDATE: SQLite has no row locks and only serialises writers."""
        statement = (
            update(Project)
            .where(Project.id == project_id)
            .values(updated_at=Project.updated_at)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(statement)

    async def admin_ids(self, project_id: uuid.UUID, *, excluding: uuid.UUID) -> list[uuid.UUID]:
        """The users holding the project's admin role, other than `excluding`."""
        statement = select(ProjectMember.user_id).where(
            ProjectMember.project_id == project_id,
            ProjectMember.role == ProjectRole.ADMIN,
            ProjectMember.user_id != excluding,
        )
        return list((await self.session.scalars(statement)).all())

    async def remove_member(self, member: ProjectMember) -> None:
        await self.session.execute(delete(ProjectMember).where(ProjectMember.id == member.id))

    async def memberships(self, user_id: uuid.UUID) -> list[tuple[ProjectMember, Project]]:
        statement = (
            select(ProjectMember, Project)
            .join(Project, Project.id == ProjectMember.project_id)
            .where(ProjectMember.user_id == user_id, Project.deleted_at.is_(None))
            .order_by(Project.name)
        )
        return [(member, project) for member, project in (await self.session.execute(statement))]
