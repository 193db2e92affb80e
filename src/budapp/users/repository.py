from __future__ import annotations

import uuid

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.auth import TenantScope
from budapp.core.repository import contains, fetch_page
from budapp.core.roles import Role
from budapp.users.models import User
from budapp.users.schemas import UserFilter


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _scoped(self, scope: TenantScope) -> Select[User]:
        return select(User).where(User.deleted_at.is_(None), scope.where(User.organization_id))

    async def get(self, scope: TenantScope, user_id: uuid.UUID) -> User | None:
        return await self.session.scalar(self._scoped(scope).where(User.id == user_id))

    async def get_many(self, scope: TenantScope, user_ids: list[uuid.UUID]) -> list[User]:
        if not user_ids:
            return []
        return list(
            (await self.session.scalars(self._scoped(scope).where(User.id.in_(user_ids)))).all()
        )

    async def get_by_email(self, email: str) -> User | None:
        statement = select(User).where(User.deleted_at.is_(None), User.email == email)
        return await self.session.scalar(statement)

    async def page(self, scope: TenantScope, filters: UserFilter) -> tuple[list[User], int]:
        statement = self._scoped(scope)
        if filters.organization_id is not None:
            statement = statement.where(User.organization_id == filters.organization_id)
        if filters.role is not None:
            statement = statement.where(User.role == filters.role)
        if filters.is_active is not None:
            statement = statement.where(User.is_active == filters.is_active)
        if filters.search:
            statement = statement.where(
                or_(contains(User.email, filters.search), contains(User.name, filters.search))
            )
        return await fetch_page(self.session, statement.order_by(User.email, User.id), filters)

    async def email_taken(self, email: str, *, excluding: uuid.UUID | None = None) -> bool:
        statement = select(User.id).where(User.deleted_at.is_(None), User.email == email)
        if excluding is not None:
            statement = statement.where(User.id != excluding)
        return (await self.session.scalar(statement.limit(1))) is not None

    async def count_active_super_admins(self) -> int:
        statement = select(func.count()).where(
            User.deleted_at.is_(None), User.is_active.is_(True), User.role == Role.SUPER_ADMIN
        )
        return int(await self.session.scalar(statement) or 0)

    async def count_in_organization(self, organization_id: uuid.UUID) -> int:
        statement = select(func.count()).where(
            User.deleted_at.is_(None), User.organization_id == organization_id
        )
        return int(await self.session.scalar(statement) or 0)

    async def any_exists(self) -> bool:
        return (await self.session.scalar(select(User.id).limit(1))) is not None

    def add(self, user: User) -> None:
        self.session.add(user)
