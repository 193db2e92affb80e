"""Just-in-time provisioning: turns the claims of a provider-signed token into the budapp user
they describe, creating the user on first sight and keeping e-mail, name and role in step
with the provider afterwards. The organisation comes from the issuer (one realm per tenant)
or the `org_id` claim, never from anything the caller chose."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.auth.models import UserIdentity
from budapp.auth.providers import IdentityProvider
from budapp.auth.repository import UserIdentityRepository
from budapp.core.auth import system_scope
from budapp.core.db import utcnow
from budapp.core.errors import Conflict, Forbidden, NotFound, Unauthorized
from budapp.core.origin import Actor, actor_of, set_actor
from budapp.core.roles import Role
from budapp.organizations.service import OrganizationService
from budapp.users.models import User
from budapp.users.service import UserService

# Role names as Keycloak realms commonly spell them; a provider's role_mapping adds to these.
DEFAULT_ROLE_NAMES: dict[str, Role] = {
    "super_admin": Role.SUPER_ADMIN,
    "super-admin": Role.SUPER_ADMIN,
    "org_admin": Role.ORG_ADMIN,
    "org-admin": Role.ORG_ADMIN,
    "admin": Role.ORG_ADMIN,
    "project_admin": Role.PROJECT_ADMIN,
    "project-admin": Role.PROJECT_ADMIN,
    "user": Role.USER,
    "developer": Role.USER,
}


def role_from_claims(provider: IdentityProvider, claims: dict[str, Any]) -> Role:
    """The highest budapp role among the provider roles the configured claims carry."""
    config = provider.settings
    names: set[str] = set()
    for path in config.roles_claims:
        value: Any = claims
        for segment in path.split("."):
            value = (
                value.get(segment.format(client_id=config.client_id))
                if isinstance(value, dict)
                else None
            )
        if isinstance(value, str):
            names.add(value)
        elif isinstance(value, list):
            names.update(item for item in value if isinstance(item, str))
    mapping = {**DEFAULT_ROLE_NAMES, **{k: Role(v) for k, v in config.role_mapping.items()}}
    roles = {mapping[name] for name in names if name in mapping}
    if not config.allow_super_admin:
        roles.discard(Role.SUPER_ADMIN)
    if not roles:
        return Role(config.default_role)
    return max(roles, key=lambda role: role.rank)


def _email_of(claims: dict[str, Any]) -> str:
    for claim in ("email", "preferred_username"):
        value = claims.get(claim)
        if isinstance(value, str) and "@" in value and len(value) <= 320:
            return value.lower()
    raise Forbidden("The identity provider sent no e-mail address; request the `email` scope")


def _name_of(claims: dict[str, Any], email: str) -> str:
    for claim in ("name", "preferred_username"):
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()[:255]
    return email


class Provisioner:
    def __init__(
        self, session: AsyncSession, users: UserService, organizations: OrganizationService
    ) -> None:
        self.session = session
        self.users = users
        self.organizations = organizations
        self.identities = UserIdentityRepository(session)

    async def user_for(
        self, provider: IdentityProvider, claims: dict[str, Any], *, login: bool
    ) -> User:
        organization_id = await self._organization_for(provider, claims)
        role = role_from_claims(provider, claims)
        email = _email_of(claims)
        name = _name_of(claims, email)
        issuer, subject = str(claims["iss"]), str(claims["sub"])

        # Changes made here are the provider's doing, and audited as such.
        previous = actor_of(self.session.sync_session)
        set_actor(self.session.sync_session, Actor("system", None, organization_id, provider.name))
        try:
            found = await self._identity(issuer, subject)
            if found is None:
                try:
                    user = await self._first_login(
                        provider, claims, organization_id, email, name, role
                    )
                except Conflict:
                    # Under READ COMMITTED a concurrent first request of this very subject may
                    # have committed between our two reads: its user is not a stranger's.
                    found = await self._identity(issuer, subject)
                    if found is None:
                        raise
            if found is not None:
                identity, user = found
                if user.organization_id != organization_id:
                    raise Forbidden("This account belongs to another organisation")
                if not user.is_active or user.deleted_at is not None:
                    raise Unauthorized("This account is disabled in budapp")
                await self.users.sync_from_provider(user, email=email, name=name, role=role)
            else:
                identity = UserIdentity(
                    user_id=user.id,
                    organization_id=organization_id,
                    provider=provider.name,
                    issuer=issuer,
                    subject=subject,
                )
                self.identities.add(identity)
            if login:
                identity.last_login_at = utcnow()
            await self.session.flush()
        finally:
            set_actor(self.session.sync_session, previous)
        return user

    async def _identity(self, issuer: str, subject: str) -> tuple[UserIdentity, User] | None:
        """The identity and its user; a deleted user comes back as it is, to be refused."""
        identity = await self.identities.find(issuer, subject)
        if identity is None:
            return None
        return identity, await self.users.get_including_deleted(identity.user_id)

    async def _first_login(  # noqa: PLR0917
        self,
        provider: IdentityProvider,
        claims: dict[str, Any],
        organization_id: uuid.UUID,
        email: str,
        name: str,
        role: Role,
    ) -> User:
        existing = await self.users.find_for_login(email)
        if existing is None:
            return await self.users.create_account(
                organization_id=organization_id, email=email, name=name, password=None, role=role
            )
        linkable = (
            provider.settings.link_verified_email
            and claims.get("email_verified") is True
            and existing.organization_id == organization_id
        )
        if not linkable:
            raise Conflict(
                f"A budapp account with e-mail {email} already exists and cannot be linked to "
                "this sign-in; ask an administrator"
            )
        if not existing.is_active:
            raise Unauthorized("This account is disabled in budapp")
        await self.users.sync_from_provider(existing, email=email, name=name, role=role)
        return existing

    async def _organization_for(
        self, provider: IdentityProvider, claims: dict[str, Any]
    ) -> uuid.UUID:
        claimed = claims.get("org_id")
        configured = provider.settings.organization
        if configured is not None:
            organization_id = await self._configured_organization(configured)
            if claimed is not None and str(claimed) != str(organization_id):
                raise Forbidden("The token's org_id does not match the provider's organisation")
            return organization_id
        try:
            organization_id = uuid.UUID(str(claimed))
        except ValueError:
            raise Forbidden(
                "The token names no organisation (org_id) and the provider maps to none"
            ) from None
        try:
            organization = await self.organizations.get(system_scope(), organization_id)
        except NotFound:
            raise Forbidden("The token's organisation does not exist in budapp") from None
        return organization.id

    async def _configured_organization(self, configured: str) -> uuid.UUID:
        try:
            organization = await self.organizations.get(system_scope(), uuid.UUID(configured))
        except (ValueError, NotFound):
            found = await self.organizations.find_by_name(system_scope(), configured)
            if found is None:
                raise Forbidden(
                    f"The provider's organisation {configured!r} does not exist in budapp"
                ) from None
            organization = found
        return organization.id
