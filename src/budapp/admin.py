"""Operations behind `budapp admin ...`: the same services as the API, acting as the operator."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.audit.schemas import VerifyRequest, VerifyResult
from budapp.audit.service import AuditService
from budapp.core import migrate
from budapp.core.auth import system_scope
from budapp.core.db import create_engine, create_session_factory
from budapp.core.references import ReferenceGuard
from budapp.core.roles import Role
from budapp.core.security import PasswordHasher
from budapp.organizations.schemas import OrganizationCreate
from budapp.organizations.service import OrganizationService
from budapp.settings import Settings
from budapp.users.service import UserService


@asynccontextmanager
async def _unit_of_work(settings: Settings) -> AsyncIterator[AsyncSession]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.should_auto_migrate:
        await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_session_factory(engine)() as session:
            yield session
            await session.commit()
    finally:
        await engine.dispose()


async def create_organization(settings: Settings, name: str) -> uuid.UUID:
    async with _unit_of_work(settings) as session:
        organization = await OrganizationService(session, ReferenceGuard()).create(
            OrganizationCreate(name=name)
        )
        return organization.id


async def create_user(
    settings: Settings,
    *,
    email: str,
    password: str,
    name: str,
    role: Role,
    organization: str | None,
) -> uuid.UUID:
    async with _unit_of_work(settings) as session:
        organizations = OrganizationService(session, ReferenceGuard())
        hasher = PasswordHasher(
            time_cost=settings.password_time_cost, memory_kib=settings.password_memory_kib
        )
        users = UserService(
            session, hasher, organizations, password_min_length=settings.password_min_length
        )
        name_wanted = organization or settings.default_organization
        found = await organizations.find_by_name(system_scope(), name_wanted)
        if found is None:
            found = await organizations.create(OrganizationCreate(name=name_wanted))
        user = await users.create_account(
            organization_id=found.id, email=email, name=name, password=password, role=role
        )
        return user.id


async def verify_audit_chain(
    settings: Settings,
    from_sequence: int | None,
    to_sequence: int | None,
    progress: Callable[[int, int], None],
) -> VerifyResult:
    engine = create_engine(settings.resolved_database_url)
    try:
        factory = create_session_factory(engine)
        async with factory() as session:
            service = AuditService(session, factory)
            request = VerifyRequest(from_sequence=from_sequence, to_sequence=to_sequence)
            return await service.verify(request, progress)
    finally:
        await engine.dispose()
