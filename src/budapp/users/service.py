from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.auth import Principal, TenantScope, system_scope
from budapp.core.db import utcnow
from budapp.core.envelope import Page
from budapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from budapp.core.roles import Role
from budapp.core.security import PasswordHasher
from budapp.organizations.service import OrganizationService
from budapp.users.models import User
from budapp.users.repository import UserRepository
from budapp.users.schemas import RoleUpdate, UserCreate, UserFilter, UserRead, UserRoles, UserUpdate

UserIntent = Literal["view", "edit", "manage"]


@dataclass(frozen=True, slots=True)
class UserAccess:
    """A user as the caller may see or change them."""

    user: User
    principal: Principal


class UserService:
    def __init__(
        self,
        session: AsyncSession,
        hasher: PasswordHasher,
        organizations: OrganizationService,
        *,
        password_min_length: int = 8,
    ) -> None:
        self.session = session
        self.repository = UserRepository(session)
        self.hasher = hasher
        self.organizations = organizations
        self.password_min_length = password_min_length

    # --- reads -----------------------------------------------------------------------------

    async def get(self, scope: TenantScope, user_id: uuid.UUID) -> User:
        user = await self.repository.get(scope, user_id)
        if user is None:
            raise NotFound("user", user_id)
        return user

    async def get_including_deleted(self, user_id: uuid.UUID) -> User:
        """For sign-in through a provider, which refuses a deleted account rather than not
        finding it."""
        user = await self.repository.by_id(user_id)
        if user is None:
            raise NotFound("user", user_id)
        return user

    async def get_many(
        self, scope: TenantScope, user_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, User]:
        return {user.id: user for user in await self.repository.get_many(scope, user_ids)}

    async def access(self, user_id: uuid.UUID, by: Principal, intent: UserIntent) -> UserAccess:
        """The user if in the caller's scope (else NOT_FOUND) and the caller may act on them:
        `view` themselves, or anyone as a project admin or above; `edit` themselves, or as a
        manager; `manage` (roles, deletion) as an org admin whose role includes theirs."""
        user = await self.get(by.scope, user_id)
        is_self = user.id == by.user_id
        if intent == "view" and not is_self and not by.has_role(Role.PROJECT_ADMIN):
            raise Forbidden("You may only view your own account")
        if intent == "manage" or (intent == "edit" and not is_self):
            self._ensure_may_manage(by, user)
        return UserAccess(user, by)

    @staticmethod
    def read(access: UserAccess) -> UserRead:
        return UserRead.model_validate(access.user)

    @staticmethod
    def roles(access: UserAccess) -> UserRoles:
        user = access.user
        effective = [role for role in Role if user.role.includes(role)]
        return UserRoles(user_id=user.id, role=user.role, effective_roles=effective)

    async def page(self, scope: TenantScope, filters: UserFilter) -> Page[UserRead]:
        rows, total = await self.repository.page(scope, filters)
        return Page([UserRead.model_validate(row) for row in rows], total, filters)

    # --- writes ----------------------------------------------------------------------------

    async def create(self, by: Principal, data: UserCreate) -> UserRead:
        organization_id = data.organization_id or by.organization_id
        # Looked up through the caller's scope: another tenant's organization is "not found".
        await self.organizations.get(by.scope, organization_id)
        self._ensure_may_grant(by, data.role)
        user = await self.create_account(
            organization_id=organization_id,
            email=data.email,
            name=data.name,
            password=data.password.get_secret_value(),
            role=data.role,
        )
        return UserRead.model_validate(user)

    async def create_account(
        self,
        *,
        organization_id: uuid.UUID,
        email: str,
        name: str,
        password: str | None,
        role: Role,
    ) -> User:
        """Creates a user without an acting principal (bootstrap, CLI, identity providers)."""
        email = email.lower()
        if await self.repository.email_taken(email):
            raise Conflict(f"A user with e-mail {email} already exists")
        password_hash = None
        if password is not None:
            self._check_password(password)
            password_hash = await self.hasher.hash(password)
        user = User(
            organization_id=organization_id,
            email=email,
            name=name,
            password_hash=password_hash,
            role=role,
        )
        self.repository.add(user)
        await self.session.flush()
        return user

    async def update(self, access: UserAccess, data: UserUpdate) -> UserRead:
        user = access.user
        is_self = user.id == access.principal.user_id
        # An explicit null means "unchanged", as for the other fields (the column is NOT NULL).
        if data.is_active is not None:
            await self._set_active(user, data.is_active, is_self=is_self)
        if data.email is not None and data.email != user.email:
            if await self.repository.email_taken(data.email, excluding=user.id):
                raise Conflict(f"A user with e-mail {data.email} already exists")
            user.email = data.email
        if data.name is not None:
            user.name = data.name
        if data.password is not None:
            await self._change_password(user, data, is_self=is_self)
        await self.session.flush()
        return UserRead.model_validate(user)

    async def set_role(self, access: UserAccess, data: RoleUpdate) -> UserRoles:
        user, by = access.user, access.principal
        if user.id == by.user_id:
            raise Conflict("You cannot change your own role")
        self._ensure_may_grant(by, data.role)
        if user.role is Role.SUPER_ADMIN and data.role is not Role.SUPER_ADMIN:
            await self._ensure_not_last_super_admin(user)
        user.role = data.role
        await self.session.flush()
        return self.roles(access)

    async def delete(self, access: UserAccess) -> None:
        user = access.user
        if user.id == access.principal.user_id:
            raise Conflict("You cannot delete your own account")
        await self._ensure_not_last_super_admin(user)
        now = utcnow()
        user.deleted_at = now
        user.is_active = False
        user.sessions_valid_after = now
        await self.session.flush()

    # --- for authentication ----------------------------------------------------------------

    async def find_for_login(self, email: str) -> User | None:
        return await self.repository.get_by_email(email.lower())

    async def get_active(self, user_id: uuid.UUID) -> User | None:
        return await self.lookup_active(self.session, user_id)

    @staticmethod
    async def lookup_active(session: AsyncSession, user_id: uuid.UUID) -> User | None:
        """For the authenticator, which runs before any service is built for the request."""
        user = await UserRepository(session).get(system_scope(), user_id)
        return user if user is not None and user.is_active else None

    async def sync_from_provider(self, user: User, *, email: str, name: str, role: Role) -> None:
        """Applies what an identity provider says about a user it vouches for. The e-mail is
        kept when another account already uses the new one."""
        email = email.lower()
        if email != user.email and not await self.repository.email_taken(email, excluding=user.id):
            user.email = email
        if name and name != user.name:
            user.name = name[:255]
        # The last active super admin is never demoted by a provider: that would lock everyone
        # out of platform administration.
        last_super_admin = (
            user.role is Role.SUPER_ADMIN
            and user.is_active
            and await self.repository.count_active_super_admins() <= 1
        )
        if role is not user.role and not last_super_admin:
            user.role = role
        await self.session.flush()

    async def record_login(self, user: User, new_password_hash: str | None) -> None:
        user.last_login_at = utcnow()
        if new_password_hash is not None:
            user.password_hash = new_password_hash
        await self.session.flush()

    async def verify_password(self, user: User | None, password: str) -> bool:
        valid, new_hash = await self.hasher.verify(password, user.password_hash if user else None)
        if valid and user is not None and new_hash is not None:
            user.password_hash = new_hash
        return valid

    async def any_exists(self) -> bool:
        return await self.repository.any_exists()

    # --- rules -----------------------------------------------------------------------------

    def _check_password(self, password: str) -> None:
        if len(password) < self.password_min_length:
            raise InvalidInput(
                f"The password must have at least {self.password_min_length} characters",
                details=[{"field": "password", "message": "too short"}],
            )

    @staticmethod
    def _ensure_may_manage(by: Principal, user: User) -> None:
        if not by.has_role(Role.ORG_ADMIN):
            raise Forbidden("Requires the org_admin role")
        if not by.role.includes(user.role):
            raise Forbidden("You cannot manage a user whose role is above yours")

    @staticmethod
    def _ensure_may_grant(by: Principal, role: Role) -> None:
        if not by.role.includes(role):
            raise Forbidden(f"You cannot grant the {role.value} role")

    async def _set_active(self, user: User, active: bool, *, is_self: bool) -> None:
        if active == user.is_active:
            return
        if is_self:
            raise Conflict("You cannot change whether your own account is active")
        if not active:
            await self._ensure_not_last_super_admin(user)
            user.sessions_valid_after = utcnow()
        user.is_active = active

    async def _change_password(self, user: User, data: UserUpdate, *, is_self: bool) -> None:
        if data.password is None:
            return
        if is_self:
            current = data.current_password.get_secret_value() if data.current_password else ""
            if not await self.verify_password(user, current):
                raise InvalidInput(
                    "The current password is incorrect",
                    details=[{"field": "current_password", "message": "incorrect"}],
                )
        password = data.password.get_secret_value()
        self._check_password(password)
        user.password_hash = await self.hasher.hash(password)
        user.sessions_valid_after = utcnow()

    async def _ensure_not_last_super_admin(self, user: User) -> None:
        # An inactive super admin is not among those counted, so removing one leaves the count.
        if (
            user.role is Role.SUPER_ADMIN
            and user.is_active
            and await self.repository.count_active_super_admins() <= 1
        ):
            raise Conflict("This is the last active super admin")


async def users_in_organization(session: AsyncSession, organization_id: uuid.UUID) -> str | None:
    count = await UserRepository(session).count_in_organization(organization_id)
    return f"{count} user(s)" if count else None
