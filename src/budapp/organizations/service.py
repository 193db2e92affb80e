from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.auth import Principal, TenantScope
from budapp.core.db import utcnow
from budapp.core.envelope import Page, PageParams
from budapp.core.errors import Conflict, Forbidden, NotFound
from budapp.core.references import ReferenceGuard
from budapp.core.roles import Role
from budapp.organizations.models import Organization
from budapp.organizations.repository import OrganizationRepository
from budapp.organizations.schemas import OrganizationCreate, OrganizationRead, OrganizationUpdate


class OrganizationService:
    def __init__(self, session: AsyncSession, references: ReferenceGuard) -> None:
        self.session = session
        self.repository = OrganizationRepository(session)
        self.references = references

    async def get(self, scope: TenantScope, organization_id: uuid.UUID) -> Organization:
        organization = await self.repository.get(scope, organization_id)
        if organization is None:
            raise NotFound("organization", organization_id)
        return organization

    async def find_by_name(self, scope: TenantScope, name: str) -> Organization | None:
        return await self.repository.get_by_name(scope, name)

    async def read(self, scope: TenantScope, organization_id: uuid.UUID) -> OrganizationRead:
        return OrganizationRead.model_validate(await self.get(scope, organization_id))

    async def page(self, scope: TenantScope, params: PageParams) -> Page[OrganizationRead]:
        rows, total = await self.repository.page(scope, params)
        return Page([OrganizationRead.model_validate(row) for row in rows], total, params)

    async def create(self, data: OrganizationCreate) -> Organization:
        await self._ensure_name_free(data.name)
        organization = Organization(name=data.name, description=data.description)
        self.repository.add(organization)
        await self.session.flush()
        return organization

    async def managed(self, organization_id: uuid.UUID, by: Principal) -> Organization:
        """An organisation in the caller's scope (else NOT_FOUND) that they administer (else
        FORBIDDEN)."""
        organization = await self.get(by.scope, organization_id)
        if not by.has_role(Role.ORG_ADMIN):
            raise Forbidden("Requires the org_admin role")
        return organization

    async def update(
        self, organization: Organization, data: OrganizationUpdate
    ) -> OrganizationRead:
        changes = data.model_dump(exclude_unset=True)
        if changes.get("name") is None:
            changes.pop("name", None)
        if "name" in changes and changes["name"] != organization.name:
            await self._ensure_name_free(changes["name"], excluding=organization.id)
        for field, value in changes.items():
            setattr(organization, field, value)
        await self.session.flush()
        return OrganizationRead.model_validate(organization)

    async def delete(self, by: Principal, organization: Organization) -> None:
        """`by` is a super admin (`SuperAdmin`), and `organization` in their scope."""
        if organization.id == by.organization_id:
            raise Conflict("You cannot delete your own organization")
        await self.references.ensure_unreferenced("organization", self.session, organization.id)
        organization.deleted_at = utcnow()
        await self.session.flush()

    async def any_exists(self) -> bool:
        return await self.repository.any_exists()

    async def _ensure_name_free(self, name: str, excluding: uuid.UUID | None = None) -> None:
        if await self.repository.name_taken(name, excluding=excluding):
            raise Conflict(f"An organization named {name!r} already exists")
