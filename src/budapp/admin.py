"""Operations behind `budapp admin ...`: the same services as the API, acting as the operator."""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.audit.schemas import VerifyRequest, VerifyResult
from budapp.audit.service import AuditService
from budapp.catalog.sweeper import SweepReport
from budapp.clusters.service import cluster_key_ids_in_use, reseal_cluster_tokens
from budapp.core import migrate
from budapp.core.auth import system_scope
from budapp.core.db import create_engine, create_session_factory
from budapp.core.errors import Conflict, InvalidInput, NotFound
from budapp.core.keyring import (
    KEY_BYTES,
    load_keyring,
    new_key_id,
    read_keyring_file,
    write_keyring_file,
)
from budapp.core.references import ReferenceGuard
from budapp.core.roles import Role
from budapp.core.security import PasswordHasher
from budapp.credentials.service import RotationReport, key_ids_in_use, reencrypt_all
from budapp.organizations.schemas import OrganizationCreate
from budapp.organizations.service import OrganizationService
from budapp.settings import Settings
from budapp.users.service import UserService
from budapp.webhooks.service import webhook_key_ids_in_use


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


def _keyring_path(settings: Settings) -> Path | None:
    """The keyring file `keys rotate` may write: None when keys come from the environment."""
    if settings.encryption_keys is not None:
        return None
    return settings.encryption_key_file or settings.data_dir / "encryption_keys.json"


async def rotate_keys(
    settings: Settings, progress: Callable[[int, int], None], *, new_key: bool = True
) -> tuple[str, RotationReport]:
    """Makes a new primary key (file-backed keyrings) and re-seals every credential under it.
    With BUDAPP_ENCRYPTION_KEYS the operator puts the new key first; this re-seals under it.
    `new_key=False` only re-seals under the current primary: finishing an interrupted run."""
    path = _keyring_path(settings)
    if path is not None and new_key:
        keyring = read_keyring_file(path)
        key_id = new_key_id()
        keys = {kid: keyring.key_bytes(kid) for kid in keyring.key_ids}
        keys[key_id] = secrets.token_bytes(KEY_BYTES)
        write_keyring_file(path, keys, key_id)
    inline = settings.inline_encryption_keys
    keyring, _ = load_keyring(inline, settings.encryption_key_file, settings.data_dir)
    engine = create_engine(settings.resolved_database_url)
    try:
        factory = create_session_factory(engine)
        report = await reencrypt_all(factory, keyring, progress=progress)
        await reseal_cluster_tokens(factory, keyring)
    finally:
        await engine.dispose()
    return keyring.primary, report


async def retire_key(settings: Settings, key_id: str) -> None:
    """Removes a key from the keyring file once no credential is sealed with it."""
    path = _keyring_path(settings)
    if path is None:
        raise InvalidInput("Keys come from BUDAPP_ENCRYPTION_KEYS: remove it there")
    keyring = read_keyring_file(path)
    if key_id == keyring.primary:
        raise Conflict("The primary key cannot be retired; rotate first")
    if key_id not in keyring.key_ids:
        raise NotFound("encryption key", key_id)
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_session_factory(engine)() as session:
            if key_id in await key_ids_in_use(session):
                raise Conflict(f"Credentials are still sealed with {key_id}; run keys rotate")
            if key_id in await webhook_key_ids_in_use(session):
                raise Conflict(
                    f"Webhook secrets are still sealed with {key_id}; rotate those webhooks' "
                    "secrets (POST /webhooks/{id}/rotate-secret)"
                )
            if key_id in await cluster_key_ids_in_use(session):
                raise Conflict(f"Cluster tokens are still sealed with {key_id}; run keys rotate")
    finally:
        await engine.dispose()
    keys = {kid: keyring.key_bytes(kid) for kid in keyring.key_ids if kid != key_id}
    write_keyring_file(path, keys, keyring.primary)


def generate_key() -> str:
    return f"{new_key_id()}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


@dataclass(frozen=True)
class RunProgress:
    status: str
    steps_done: int
    steps_total: int
    current: str | None
    error: str | None

    @property
    def finished(self) -> bool:
        return self.status in {"SUCCEEDED", "FAILED", "CANCELLED"}


async def watch_workflow(
    settings: Settings,
    run_id: uuid.UUID,
    progress: Callable[[RunProgress], None],
    *,
    interval: float = 0.25,
) -> RunProgress:
    """Follows a workflow run until it finishes, reporting each change (for `budapp
    workflows watch`; the API and WebSocket serve the same rows to users)."""
    from budapp.workflows.repository import WorkflowRepository  # noqa: PLC0415

    engine = create_engine(settings.resolved_database_url)
    try:
        factory = create_session_factory(engine)
        last: RunProgress | None = None
        while True:
            async with factory() as session:
                repository = WorkflowRepository(session)
                run = await repository.get(system_scope(), run_id)
                if run is None:
                    raise NotFound("workflow", run_id)
                steps = await repository.steps(run.id)
            running = next((step for step in steps if step.status == "RUNNING"), None)
            current = None
            if running is not None:
                current = running.title + (f": {running.detail}" if running.detail else "")
            state = RunProgress(
                run.status.value, run.steps_done, run.steps_total, current, run.error
            )
            if state != last:
                progress(state)
                last = state
            if state.finished:
                return state
            await asyncio.sleep(interval)
    finally:
        await engine.dispose()


async def sweep_storage(
    settings: Settings, *, dry_run: bool, listed: Callable[[int], None] | None = None
) -> SweepReport:
    """One run of the storage sweeper, with the settings `budapp serve` would use."""
    from budapp.startup import object_storage, storage_sweeper  # noqa: PLC0415 - heavy

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.should_auto_migrate:
        await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
    engine = create_engine(settings.resolved_database_url)
    storage = object_storage(settings)
    try:
        await storage.start()
        sweeper = storage_sweeper(settings, create_session_factory(engine), storage)
        return await sweeper.sweep(dry_run=dry_run, listed=listed)
    finally:
        await storage.close()
        await engine.dispose()
