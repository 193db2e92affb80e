from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import flag_modified

from budapp.core.auth import Principal, TenantScope, system_scope
from budapp.core.components import Key
from budapp.core.db import utcnow
from budapp.core.envelope import Page
from budapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from budapp.core.keyring import DecryptionError, Keyring, KeyringError, Sealed
from budapp.core.references import ReferenceGuard
from budapp.core.roles import Permission, Role
from budapp.credentials.models import Credential
from budapp.credentials.repository import CredentialRepository
from budapp.credentials.schemas import (
    CredentialCreate,
    CredentialFilter,
    CredentialRead,
    CredentialUpdate,
)
from budapp.credentials.specs import SPEC_BY_KIND
from budapp.events.service import publish_after_commit
from budapp.organizations.service import OrganizationService
from budapp.projects.service import ProjectService

# A credential changed or was deleted: gateways reload the routing of its organization.
CREDENTIALS_CHANGED_TOPIC = "credentials.changed"


class CredentialUnreadable(Conflict):
    """The credential's ciphertext cannot be opened; other credentials are unaffected."""


def mask(value: str) -> str:
    # Short secrets show nothing: four characters of an eight-character key are half of it.
    return "****" + value[-4:] if len(value) >= 12 else "****"


def _associated(credential_id: uuid.UUID) -> bytes:
    # Binds each ciphertext to its row: copying it onto another credential makes it unreadable.
    return f"budapp:credential:{credential_id}".encode()


class CredentialVault:
    """Seals and opens credential secrets with the keyring."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def seal(self, credential: Credential, secrets: dict[str, str]) -> None:
        sealed = self.keyring.seal(json.dumps(secrets).encode(), _associated(credential.id))
        credential.key_id = sealed.key_id
        credential.ciphertext = sealed.ciphertext
        # The pair is one value: written together even when the key id looks unchanged, or a
        # rotation committed meanwhile would leave this ciphertext under the new key's id.
        flag_modified(credential, "key_id")

    def open(self, credential: Credential) -> dict[str, str]:
        if credential.ciphertext is None or credential.key_id is None:
            raise DecryptionError("the credential holds no secret")
        plaintext = self.keyring.open(
            Sealed(credential.key_id, credential.ciphertext), _associated(credential.id)
        )
        secrets: dict[str, str] = json.loads(plaintext)
        return secrets


@dataclass(frozen=True, slots=True)
class CredentialAccess:
    """A credential as one caller may use it: found in their scope, their permission checked."""

    credential: Credential
    principal: Principal


class CredentialService:
    def __init__(
        self,
        session: AsyncSession,
        vault: CredentialVault,
        projects: ProjectService,
        organizations: OrganizationService,
        references: ReferenceGuard,
    ) -> None:
        self.session = session
        self.repository = CredentialRepository(session)
        self.vault = vault
        self.projects = projects
        self.organizations = organizations
        self.references = references

    # --- access ----------------------------------------------------------------------------

    async def access(
        self, credential_id: uuid.UUID, principal: Principal, permission: Permission
    ) -> CredentialAccess:
        """The credential if the caller may see it (else NOT_FOUND) and holds `permission`
        on it (else FORBIDDEN; see `_authorize`)."""
        credential = await self.repository.get(principal.scope, credential_id)
        if credential is None:
            raise NotFound("credential", credential_id)
        await self._authorize(credential, principal, Permission.CREDENTIAL_VIEW, hide=True)
        if permission is not Permission.CREDENTIAL_VIEW:
            await self._authorize(credential, principal, permission, hide=False)
        return CredentialAccess(credential, principal)

    # --- reads -----------------------------------------------------------------------------

    def read(self, access: CredentialAccess) -> CredentialRead:
        return self._read(access.credential)

    async def page(self, by: Principal, filters: CredentialFilter) -> Page[CredentialRead]:
        visible: list[uuid.UUID] | None = None
        if not by.has_role(Role.ORG_ADMIN):
            visible = [
                membership.project_id
                for membership in await self.projects.memberships(by.user_id)
                if Permission.CREDENTIAL_VIEW in membership.permissions
            ]
        rows, total = await self.repository.page(
            by.scope,
            filters,
            visible_projects=visible,
            organization_wide=by.has_role(Role.PROJECT_ADMIN),
        )
        return Page([self._read(row) for row in rows], total, filters)

    async def reveal(self, scope: TenantScope, credential_id: uuid.UUID) -> dict[str, Any]:
        """The credential's full values, for the code that calls the provider or cloud.
        Never returned over the API."""
        credential = await self.repository.get(scope, credential_id)
        if credential is None:
            raise NotFound("credential", credential_id)
        try:
            secrets = self.vault.open(credential)
        except DecryptionError as exc:
            raise CredentialUnreadable(f"Credential {credential_id} cannot be read: {exc}") from exc
        return {"kind": credential.kind, **credential.config, **secrets}

    # --- writes ----------------------------------------------------------------------------

    async def create(self, by: Principal, data: CredentialCreate) -> CredentialRead:
        organization_id = data.organization_id or by.organization_id
        await self.organizations.get(by.scope, organization_id)
        if data.project_id is not None:
            access = await self.projects.access(data.project_id, by, Permission.CREDENTIAL_MANAGE)
            if access.project.organization_id != organization_id:
                raise NotFound("project", data.project_id)
        elif not by.has_role(Role.ORG_ADMIN):
            raise Forbidden("Organization-wide credentials require the org_admin role")
        await self._ensure_name_free(organization_id, data.name)
        credential = Credential(
            id=uuid.uuid4(),
            organization_id=organization_id,
            project_id=data.project_id,
            name=data.name,
            description=data.description,
            kind=data.spec.kind,
            category=data.spec.category,
            config=data.spec.config_values(),
        )
        self.vault.seal(credential, data.spec.secret_values())
        self.repository.add(credential)
        await self.session.flush()
        return self._read(credential)

    async def update(self, access: CredentialAccess, data: CredentialUpdate) -> CredentialRead:
        credential = access.credential
        if data.name is not None and data.name != credential.name:
            await self._ensure_name_free(
                credential.organization_id, data.name, excluding=credential.id
            )
            credential.name = data.name
        if "description" in data.model_fields_set:
            credential.description = data.description
        if data.spec is not None:
            self._replace_spec(credential, data.spec)
            self._announce(credential)
        await self.session.flush()
        return self._read(credential)

    async def delete(self, access: CredentialAccess) -> None:
        credential = access.credential
        await self.references.ensure_unreferenced("credential", self.session, credential.id)
        credential.deleted_at = utcnow()
        credential.ciphertext = None
        credential.key_id = None
        await self.session.flush()
        self._announce(credential)

    # --- rules -----------------------------------------------------------------------------

    def _announce(self, credential: Credential) -> None:
        payload = {"organization_id": str(credential.organization_id)}
        publish_after_commit(self.session, CREDENTIALS_CHANGED_TOPIC, payload)

    def _replace_spec(self, credential: Credential, changes: dict[str, Any]) -> None:
        if changes.get("kind", credential.kind) != credential.kind:
            raise InvalidInput(
                "The kind of a credential cannot change; create a new one",
                details=[{"field": "spec.kind", "message": "cannot change"}],
            )
        try:
            current = self.vault.open(credential)
        except DecryptionError as exc:
            raise CredentialUnreadable(f"The credential cannot be read: {exc}") from exc
        merged = {**credential.config, **current, **changes, "kind": credential.kind}
        try:
            spec = SPEC_BY_KIND[credential.kind].model_validate(merged)
        except ValidationError as exc:
            details = [
                {"field": "spec." + ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors()
            ]
            raise InvalidInput("The credential's fields are invalid", details=details) from None
        credential.config = spec.config_values()
        self.vault.seal(credential, spec.secret_values())

    def _read(self, credential: Credential) -> CredentialRead:
        secrets: dict[str, str] | None
        error = None
        try:
            secrets = {name: mask(value) for name, value in self.vault.open(credential).items()}
        except DecryptionError as exc:
            secrets, error = None, str(exc)
        return CredentialRead(
            id=credential.id,
            created_at=credential.created_at,
            updated_at=credential.updated_at,
            organization_id=credential.organization_id,
            project_id=credential.project_id,
            name=credential.name,
            description=credential.description,
            kind=credential.kind,
            category="cloud" if credential.category == "cloud" else "provider",
            config=credential.config,
            secrets=secrets,
            status="ok" if error is None else "unreadable",
            error=error,
            key_id=credential.key_id,
        )

    async def _authorize(
        self, credential: Credential, by: Principal, permission: Permission, *, hide: bool
    ) -> None:
        """Org admins hold every permission in their scope. Others need the permission on the
        credential's project; organization-wide credentials are visible to project admins and
        managed by org admins only. `hide`: answer NOT_FOUND rather than FORBIDDEN."""
        if by.has_role(Role.ORG_ADMIN):
            return
        if credential.project_id is None:
            if permission is Permission.CREDENTIAL_VIEW and by.has_role(Role.PROJECT_ADMIN):
                return
            if hide and not by.has_role(Role.PROJECT_ADMIN):
                raise NotFound("credential", credential.id)
            raise Forbidden("Organization-wide credentials are managed by org admins")
        try:
            await self.projects.access(credential.project_id, by, permission)
        except NotFound:
            raise NotFound("credential", credential.id) from None

    async def _ensure_name_free(
        self, organization_id: uuid.UUID, name: str, excluding: uuid.UUID | None = None
    ) -> None:
        if await self.repository.name_taken(organization_id, name, excluding=excluding):
            raise Conflict(f"A credential named {name!r} already exists in this organization")


# --- keys -------------------------------------------------------------------------------------

_SAMPLES_PER_KEY = 5


async def check_keyring(session: AsyncSession, keyring: Keyring, *, generated: bool) -> None:
    """Refuses to start with keys that cannot open the stored credentials: a missing key id,
    a wrong key under a known id, or a freshly generated key while ciphertexts exist."""
    repository = CredentialRepository(session)
    in_use = await repository.key_ids_in_use()
    if generated and in_use:
        raise KeyringError(
            "no encryption key is configured and the embedded keyring was missing, but "
            f"credentials sealed with {', '.join(sorted(in_use))} exist: restore the keyring "
            "file or set BUDAPP_ENCRYPTION_KEYS / BUDAPP_ENCRYPTION_KEY_FILE"
        )
    if missing := sorted(set(in_use) - keyring.key_ids):
        raise KeyringError(f"credentials are sealed with keys that are not configured: {missing}")
    vault = CredentialVault(keyring)
    for key_id in in_use:
        # A wrong key opens none of them; one corrupted credential must not stop the start
        # (it reads as "unreadable" on its own), so one that opens is proof enough.
        failure: DecryptionError | None = None
        for sample in await repository.sample_sealed_with(key_id, _SAMPLES_PER_KEY):
            try:
                vault.open(sample)
            except DecryptionError as exc:
                failure = exc
            else:
                failure = None
                break
        if failure is not None:
            raise KeyringError(
                f"the configured key {key_id!r} does not open credentials: {failure}"
            ) from failure


@dataclass(frozen=True, slots=True)
class RotationReport:
    resealed: int
    # Credentials that could not be opened (corrupted): left as they are, named for the operator.
    unreadable: list[uuid.UUID]


async def reencrypt_all(
    factory: async_sessionmaker[AsyncSession],
    keyring: Keyring,
    *,
    batch_size: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> RotationReport:
    """Re-seals every credential not yet under the primary key, a batch per transaction.
    Interrupted, it loses nothing: each credential is under its old key or the new one, and
    both are in the keyring; running it again finishes the job."""
    vault = CredentialVault(keyring)
    async with factory() as session:
        total = await CredentialRepository(session).count_sealed_with_other_keys(keyring.primary)
    resealed = 0
    unreadable: list[uuid.UUID] = []
    after: uuid.UUID | None = None
    while True:
        async with factory() as session:
            repository = CredentialRepository(session)
            batch = await repository.sealed_with_other_keys(
                keyring.primary, batch_size, after=after
            )
            if not batch:
                return RotationReport(resealed, unreadable)
            for credential in batch:
                # Changed since it was read (an update through the API): re-sealing what was
                # read would undo that change. Whoever changed it sealed it; a re-run sees it.
                if not await repository.lock_if_unchanged(credential):
                    continue
                try:
                    vault.seal(credential, vault.open(credential))
                    resealed += 1
                except DecryptionError:
                    unreadable.append(credential.id)
            await session.commit()
            after = batch[-1].id
        if progress:
            progress(resealed + len(unreadable), total)


async def key_ids_in_use(session: AsyncSession) -> list[str]:
    return await CredentialRepository(session).key_ids_in_use()


async def credentials_of_project(session: AsyncSession, project_id: uuid.UUID) -> str | None:
    count = await CredentialRepository(session).count_for_project(project_id)
    return f"{count} credential(s)" if count else None


async def secrets_for_project(
    session: AsyncSession,
    vault: CredentialVault,
    organization_id: uuid.UUID,
    project_id: uuid.UUID,
    credential_id: uuid.UUID,
) -> dict[str, Any] | None:
    """A credential's full values for code that calls a provider on a project's behalf (the
    gateway): None unless the credential is live and usable by that project."""
    credential = await CredentialRepository(session).get(system_scope(), credential_id)
    if credential is None or credential.organization_id != organization_id:
        return None
    if credential.project_id is not None and credential.project_id != project_id:
        return None
    try:
        return {"kind": credential.kind, **credential.config, **vault.open(credential)}
    except DecryptionError:
        return None


async def organization_secrets(
    session: AsyncSession,
    vault: CredentialVault,
    organization_id: uuid.UUID,
    credential_id: uuid.UUID,
    *,
    kind: str,
) -> dict[str, Any]:
    """A credential of `kind` that belongs to the whole organization (not to one project),
    opened for code that acts for the organization (a cluster's kubeconfig). Another tenant's
    credential is not found; one of another kind or of a project is refused."""
    credential = await CredentialRepository(session).get(system_scope(), credential_id)
    if credential is None or credential.organization_id != organization_id:
        raise NotFound("credential", credential_id)
    if credential.kind != kind or credential.project_id is not None:
        raise InvalidInput(
            f"Credential {credential_id} must be an organization-wide {kind} credential",
            details=[{"field": "credential_id", "message": f"not an organization {kind}"}],
        )
    try:
        return {**credential.config, **vault.open(credential)}
    except DecryptionError as exc:
        raise CredentialUnreadable(f"Credential {credential_id} cannot be read: {exc}") from exc


VAULT: Key[CredentialVault] = Key("credentials vault")
