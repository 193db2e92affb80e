from __future__ import annotations

import uuid

from sqlalchemy import Select, select

from budapp.core.auth import TenantScope
from budapp.core.envelope import PageParams
from budapp.core.repository import Repository, fetch_page
from budapp.organizations.models import Organization


class OrganizationRepository(Repository):
    def _scoped(self, scope: TenantScope) -> Select[Organization]:
        return select(Organization).where(
            Organization.deleted_at.is_(None), scope.where(Organization.id)
        )

    async def get(self, scope: TenantScope, organization_id: uuid.UUID) -> Organization | None:
        statement = self._scoped(scope).where(Organization.id == organization_id)
        return await self.session.scalar(statement)

    async def get_by_name(self, scope: TenantScope, name: str) -> Organization | None:
        return await self.session.scalar(self._scoped(scope).where(Organization.name == name))

    async def page(self, scope: TenantScope, params: PageParams) -> tuple[list[Organization], int]:
        statement = self._scoped(scope).order_by(Organization.name, Organization.id)
        return await fetch_page(self.session, statement, params)

    async def name_taken(self, name: str, *, excluding: uuid.UUID | None = None) -> bool:
        statement = select(Organization.id).where(
            Organization.deleted_at.is_(None), Organization.name == name
        )
        if excluding is not None:
            statement = statement.where(Organization.id != excluding)
        return (await self.session.scalar(statement.limit(1))) is not None

    async def any_exists(self) -> bool:
        return (await self.session.scalar(select(Organization.id).limit(1))) is not None
