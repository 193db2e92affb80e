from __future__ import annotations

import uuid

from sqlalchemy import Select, func, select

from budapp.core.auth import TenantScope
from budapp.core.repository import Repository, equal, fetch_page, narrowed, search
from budapp.core.roles import Role
from budapp.users.models import User
from budapp.users.schemas import UserFilter

_FILTERS = (
    equal("organization_id", User.organization_id),
    equal("role", User.role),
    equal("is_active", User.is_active),
    search("search", User.email, User.name),
)


class UserRepository(Repository):
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

    async def by_id(self, user_id: uuid.UUID) -> User | None:
        """Any user, deleted or not (sign-in refuses a deleted one by name)."""
        return await self.session.get(User, user_id)

    async def get_by_email(self, email: str) -> User | None:
        statement = select(User).where(User.deleted_at.is_(None), User.email == email)
        return await self.session.scalar(statement)

    async def page(self, scope: TenantScope, filters: UserFilter) -> tuple[list[User], int]:
        statement = narrowed(self._scoped(scope), filters, _FILTERS)
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
