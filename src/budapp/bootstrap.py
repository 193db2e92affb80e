"""First start: an empty database gets an organization and a super admin."""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.core.logging import get_logger
from budapp.core.references import ReferenceGuard
from budapp.core.roles import Role
from budapp.core.security import PasswordHasher
from budapp.organizations.schemas import OrganizationCreate
from budapp.organizations.service import OrganizationService
from budapp.settings import Settings
from budapp.users.service import UserService

log = get_logger("budapp.bootstrap")


async def ensure_initial_admin(
    factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    hasher: PasswordHasher,
    references: ReferenceGuard,
) -> str | None:
    """Creates the first super admin if there is no user at all. Returns the generated
    password when none was configured, for the caller to show once; None otherwise."""
    async with factory() as session:
        organizations = OrganizationService(session, references)
        users = UserService(
            session, hasher, organizations, password_min_length=settings.password_min_length
        )
        if await users.any_exists():
            return None
        generated = settings.admin_password is None
        password = (
            secrets.token_urlsafe(18)
            if settings.admin_password is None
            else settings.admin_password.get_secret_value()
        )
        try:
            organization = await organizations.create(
                OrganizationCreate(name=settings.default_organization)
            )
            await users.create_account(
                organization_id=organization.id,
                email=settings.admin_email,
                name="Administrator",
                password=password,
                role=Role.SUPER_ADMIN,
            )
            await session.commit()
        except IntegrityError:
            # Another replica bootstrapped at the same moment; its admin stands.
            await session.rollback()
            return None
    log.info("bootstrap_admin_created", email=settings.admin_email)
    return password if generated else None
