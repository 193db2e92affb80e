from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import CursorResult, Select, func, or_, select, update

from budapp.core.auth import TenantScope
from budapp.core.repository import Repository, equal, fetch_page, name_taken, narrowed
from budapp.credentials.models import Credential
from budapp.credentials.schemas import CredentialFilter

_FILTERS = (
    equal("project_id", Credential.project_id),
    equal("kind", Credential.kind),
    equal("category", Credential.category),
    equal("organization_id", Credential.organization_id),
)


class CredentialRepository(Repository):
    def _scoped(self, scope: TenantScope) -> Select[Credential]:
        return select(Credential).where(
            Credential.deleted_at.is_(None), scope.where(Credential.organization_id)
        )

    async def get(self, scope: TenantScope, credential_id: uuid.UUID) -> Credential | None:
        return await self.session.scalar(self._scoped(scope).where(Credential.id == credential_id))

    async def page(
        self,
        scope: TenantScope,
        filters: CredentialFilter,
        *,
        visible_projects: list[uuid.UUID] | None,
        organization_wide: bool,
    ) -> tuple[list[Credential], int]:
        """`visible_projects` None: every credential in scope; else only those of these
        projects, plus organization-wide ones when `organization_wide`."""
        statement = self._scoped(scope)
        if visible_projects is not None:
            visible = Credential.project_id.in_(visible_projects)
            statement = statement.where(
                or_(visible, Credential.project_id.is_(None)) if organization_wide else visible
            )
        statement = narrowed(statement, filters, _FILTERS).order_by(Credential.name, Credential.id)
        return await fetch_page(self.session, statement, filters)

    async def name_taken(
        self, organization_id: uuid.UUID, name: str, *, excluding: uuid.UUID | None = None
    ) -> bool:
        return await name_taken(
            self.session, Credential, name, excluding=excluding, organization_id=organization_id
        )

    async def key_ids_in_use(self) -> list[str]:
        statement = select(Credential.key_id).where(Credential.ciphertext.is_not(None)).distinct()
        return [key_id for key_id in (await self.session.scalars(statement)).all() if key_id]

    async def sample_sealed_with(self, key_id: str, limit: int) -> Sequence[Credential]:
        statement = (
            select(Credential)
            .where(Credential.key_id == key_id, Credential.ciphertext.is_not(None))
            .limit(limit)
        )
        return (await self.session.scalars(statement)).all()

    async def sealed_with_other_keys(
        self, primary: str, limit: int, *, after: uuid.UUID | None
    ) -> Sequence[Credential]:
        statement = select(Credential).where(
            Credential.ciphertext.is_not(None), Credential.key_id != primary
        )
        if after is not None:
            statement = statement.where(Credential.id > after)
        statement = statement.order_by(Credential.id).limit(limit)
        return (await self.session.scalars(statement)).all()

    async def lock_if_unchanged(self, credential: Credential) -> bool:
        """Takes the row's write lock with a no-op write, if its ciphertext is still the one
        read: a change made meanwhile is then neither overwritten nor able to overwrite."""
        statement = (
            update(Credential)
            .where(Credential.id == credential.id, Credential.ciphertext == credential.ciphertext)
            .values(ciphertext=credential.ciphertext, updated_at=Credential.updated_at)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(statement)
        return isinstance(result, CursorResult) and result.rowcount == 1

    async def count_sealed_with_other_keys(self, primary: str) -> int:
        statement = select(func.count()).where(
            Credential.ciphertext.is_not(None), Credential.key_id != primary
        )
        return int(await self.session.scalar(statement) or 0)

    async def count_for_project(self, project_id: uuid.UUID) -> int:
        statement = select(func.count()).where(
            Credential.deleted_at.is_(None), Credential.project_id == project_id
        )
        return int(await self.session.scalar(statement) or 0)
