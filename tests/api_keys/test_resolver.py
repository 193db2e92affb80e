"""The API-key resolver on the hot path: warm lookups never touch the database, revocations
reach every replica through the event bus, last-used times are written in batches; and the
unit of work that announces a revocation only after it commits."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.adapters.events import EventBus, Handler, MemoryEventBus
from budapp.adapters.events.redis import RedisEventBus
from budapp.api_keys import resolver as resolver_module
from budapp.api_keys.models import ApiKey
from budapp.api_keys.resolver import API_KEY_RESOLVER, REVOKED_TOPIC, ApiKeyResolver
from budapp.api_keys.schemas import ApiKeyCreate, ApiKeyCreated
from budapp.api_keys.service import ApiKeyService, new_key
from budapp.core.auth import Principal
from budapp.core.components import components
from budapp.core.db import BudappSession, after_commit, session_scope, utcnow
from budapp.core.errors import Conflict, NotFound, Unauthorized
from budapp.core.roles import ProjectRole, Role
from budapp.organizations.models import Organization
from budapp.projects.models import Project
from budapp.projects.service import ALL_PERMISSIONS, ProjectAccess
from tests.factories import create_account, create_organization, create_project
from tests.redis_buses import replica_bus_pair
from tests.sql_trace import sql_statements

REDIS_URL = os.environ.get("BUDAPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TTL = 300.0  # far longer than any test: an entry that goes away was evicted, not expired


class ResyncableBus(MemoryEventBus):
    """The in-memory bus, plus the resync signal a Redis listener sends after a reconnect."""

    def __init__(self) -> None:
        super().__init__()
        self.handlers: list[Handler] = []

    def subscribe(self, topic: str, handler: Handler) -> None:
        super().subscribe(topic, handler)
        self.handlers.append(handler)

    def resync(self) -> None:
        for handler in self.handlers:
            handler(None)


@dataclass
class Owner:
    """A project and the admin who manages its keys."""

    project_id: uuid.UUID
    principal: Principal

    async def access(self, session: AsyncSession) -> ProjectAccess:
        project = await session.get(Project, self.project_id)
        assert project is not None
        return ProjectAccess(project, self.principal, ALL_PERMISSIONS)


@pytest.fixture(autouse=True)
async def quiet_app_resolver(app: FastAPI) -> AsyncIterator[None]:
    """Stops the app's own resolver from flushing in the background, so the only statements
    on the engine are the ones a test makes."""
    await components(app)[API_KEY_RESOLVER].close()
    yield
    await components(app)[API_KEY_RESOLVER].start()


@pytest.fixture
async def owner(app: FastAPI) -> Owner:
    organization = await create_organization(app, "Keys Org")
    admin = await create_account(app, organization, "keys-admin@example.com", Role.PROJECT_ADMIN)
    project = await create_project(app, organization, "Keys", {admin.id: ProjectRole.ADMIN})
    return Owner(project, Principal(admin.id, organization, admin.role, admin.email))


@pytest.fixture
async def resolver(app: FastAPI) -> AsyncIterator[ApiKeyResolver]:
    """A resolver of its own (never started: no background flush), on the app's database."""
    own = ApiKeyResolver(
        components(app).session_factory, ResyncableBus(), ttl_seconds=TTL, flush_seconds=3600
    )
    yield own
    await own.close()


async def issue(app: FastAPI, owner: Owner, **fields: Any) -> ApiKeyCreated:
    async with session_scope(components(app).session_factory) as session:
        service = ApiKeyService(session, components(app).event_bus)
        return await service.create(await owner.access(session), ApiKeyCreate(name="k", **fields))


async def revoke(app: FastAPI, owner: Owner, key_id: uuid.UUID, bus: EventBus) -> None:
    async with session_scope(components(app).session_factory) as session:
        await ApiKeyService(session, bus).revoke(await owner.access(session), key_id)


async def stored(app: FastAPI, key_id: uuid.UUID) -> ApiKey:
    async with components(app).session_factory() as session:
        key = await session.get(ApiKey, key_id)
        assert key is not None
        return key


def updates(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith("UPDATE")]


# --- the cache ------------------------------------------------------------------------------


async def test_a_warm_lookup_makes_no_database_query(
    app: FastAPI, owner: Owner, resolver: ApiKeyResolver
) -> None:
    key = await issue(app, owner)

    with sql_statements(components(app).engine) as cold:
        identity = await resolver.resolve(key.key)
    with sql_statements(components(app).engine) as warm:
        for _ in range(100):
            assert await resolver.resolve(key.key) == identity

    assert len(cold) == 1
    assert "api_keys" in cold[0]
    assert warm == []
    assert (identity.key_id, identity.project_id, identity.prefix) == (
        key.id,
        owner.project_id,
        key.prefix,
    )
    assert identity.organization_id == owner.principal.organization_id


async def test_an_unknown_key_is_remembered_briefly(app: FastAPI, resolver: ApiKeyResolver) -> None:
    unknown = new_key()

    with sql_statements(components(app).engine) as first, pytest.raises(Unauthorized):
        await resolver.resolve(unknown)
    with sql_statements(components(app).engine) as again, pytest.raises(Unauthorized):
        await resolver.resolve(unknown)

    assert len(first) == 1
    assert again == []


async def test_an_unknown_key_is_looked_up_again_after_the_negative_ttl(
    app: FastAPI, resolver: ApiKeyResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Far shorter than the positive TTL (300 s), so only the negative one can explain a reload.
    monkeypatch.setattr(resolver_module, "_NEGATIVE_TTL", 0.05)
    unknown = new_key()
    with pytest.raises(Unauthorized):
        await resolver.resolve(unknown)

    await asyncio.sleep(0.1)
    with sql_statements(components(app).engine) as later, pytest.raises(Unauthorized):
        await resolver.resolve(unknown)

    assert len(later) == 1


async def test_a_malformed_key_never_reaches_the_database(
    app: FastAPI, resolver: ApiKeyResolver
) -> None:
    with sql_statements(components(app).engine) as statements:
        for raw in ("", "bud_sk_short", "sk_" + "a" * 47, new_key() + "x", new_key()[:-1]):
            with pytest.raises(Unauthorized):
                await resolver.resolve(raw)
    assert statements == []


async def test_a_warm_entry_still_honours_the_expiry(
    app: FastAPI, owner: Owner, resolver: ApiKeyResolver
) -> None:
    key = await issue(app, owner, expires_in_days=1)
    soon = utcnow() + timedelta(seconds=0.5)
    async with session_scope(components(app).session_factory) as session:
        await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(expires_at=soon))
    assert (await resolver.resolve(key.key)).expires_at == soon

    await asyncio.sleep(max(0.0, (soon - utcnow()).total_seconds()) + 0.05)
    with (
        sql_statements(components(app).engine) as statements,
        pytest.raises(Unauthorized, match="expired"),
    ):
        await resolver.resolve(key.key)
    assert statements == []


# --- revocation -----------------------------------------------------------------------------


async def test_the_revocation_event_evicts_the_entry(app: FastAPI, owner: Owner) -> None:
    resolver: ApiKeyResolver = components(app)[API_KEY_RESOLVER]
    key, other = await issue(app, owner), await issue(app, owner)
    await resolver.resolve(key.key)
    await resolver.resolve(other.key)

    await components(app).event_bus.publish(REVOKED_TOPIC, {"key_id": str(key.id)})
    # Payloads that name no key of ours, or no key at all, change nothing.
    for payload in ({"key_id": str(uuid.uuid4())}, {"key_id": "not-a-uuid"}, {}):
        await components(app).event_bus.publish(REVOKED_TOPIC, payload)

    with sql_statements(components(app).engine) as statements:
        # Still valid in the database: the event alone made the resolver look again.
        assert (await resolver.resolve(key.key)).key_id == key.id
        assert (await resolver.resolve(other.key)).key_id == other.id
    assert len(statements) == 1


async def test_a_resync_signal_clears_the_cache(app: FastAPI, owner: Owner) -> None:
    bus = ResyncableBus()
    resolver = ApiKeyResolver(
        components(app).session_factory, bus, ttl_seconds=TTL, flush_seconds=3600
    )
    keys = [await issue(app, owner) for _ in range(3)]
    for key in keys:
        await resolver.resolve(key.key)

    bus.resync()

    with sql_statements(components(app).engine) as statements:
        for key in keys:
            await resolver.resolve(key.key)
    assert len(statements) == 3
    await resolver.close()


async def test_a_revoked_key_is_refused_at_once_in_the_same_process(
    app: FastAPI, owner: Owner
) -> None:
    bus = ResyncableBus()
    resolver = ApiKeyResolver(
        components(app).session_factory, bus, ttl_seconds=TTL, flush_seconds=3600
    )
    key = await issue(app, owner)
    await resolver.resolve(key.key)

    await revoke(app, owner, key.id, bus)

    with pytest.raises(Unauthorized):
        await resolver.resolve(key.key)
    await resolver.close()


async def test_a_revocation_heard_during_a_lookup_is_not_undone_by_it(
    app: FastAPI, owner: Owner
) -> None:
    """The lookup read the row before the revocation committed; caching that read would let
    the revoked key in for a whole TTL."""
    read, release = asyncio.Event(), asyncio.Event()

    class SlowSession(AsyncSession):
        async def scalar(self, *args: Any, **kwargs: Any) -> Any:
            value = await super().scalar(*args, **kwargs)
            read.set()
            await release.wait()
            return value

    slow = async_sessionmaker(
        components(app).engine, class_=SlowSession, sync_session_class=BudappSession
    )
    bus = ResyncableBus()
    resolver = ApiKeyResolver(slow, bus, ttl_seconds=TTL, flush_seconds=3600)
    key = await issue(app, owner)

    lookup = asyncio.create_task(resolver.resolve(key.key))
    await read.wait()
    await revoke(app, owner, key.id, bus)
    release.set()

    # It began before the revocation and may be served; what it read must not be kept.
    assert (await lookup).key_id == key.id
    with pytest.raises(Unauthorized):
        await resolver.resolve(key.key)
    await resolver.close()


# --- last used ------------------------------------------------------------------------------


async def test_last_used_is_written_in_one_batch_not_per_request(
    app: FastAPI, owner: Owner, resolver: ApiKeyResolver
) -> None:
    busy, quiet = await issue(app, owner), await issue(app, owner)
    for _ in range(50):
        await resolver.resolve(busy.key)
    await resolver.resolve(quiet.key)
    last_use = utcnow()
    assert (await stored(app, busy.id)).last_used_at is None

    with sql_statements(components(app).engine) as statements:
        await resolver.flush_usage()

    assert len(updates(statements)) == 2  # one per key, not one per use
    busy_row, quiet_row = await stored(app, busy.id), await stored(app, quiet.id)
    assert busy_row.last_used_at is not None
    assert quiet_row.last_used_at is not None
    assert abs(busy_row.last_used_at - last_use) < timedelta(seconds=5)
    with sql_statements(components(app).engine) as idle:
        await resolver.flush_usage()
    assert idle == []


async def test_last_used_never_moves_backwards(
    app: FastAPI, owner: Owner, resolver: ApiKeyResolver
) -> None:
    key = await issue(app, owner)
    later = utcnow() + timedelta(hours=1)
    async with session_scope(components(app).session_factory) as session:
        await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=later))

    await resolver.resolve(key.key)
    await resolver.flush_usage()

    assert (await stored(app, key.id)).last_used_at == later


async def test_close_flushes_pending_uses(app: FastAPI, owner: Owner) -> None:
    resolver = ApiKeyResolver(
        components(app).session_factory, ResyncableBus(), ttl_seconds=TTL, flush_seconds=3600
    )
    await resolver.start()
    key = await issue(app, owner)
    for _ in range(3):
        await resolver.resolve(key.key)
    assert (await stored(app, key.id)).last_used_at is None

    await resolver.close()

    assert (await stored(app, key.id)).last_used_at is not None


async def test_the_background_task_flushes_periodically(app: FastAPI, owner: Owner) -> None:
    resolver = ApiKeyResolver(
        components(app).session_factory, ResyncableBus(), ttl_seconds=TTL, flush_seconds=0.05
    )
    await resolver.start()
    key = await issue(app, owner)
    await resolver.resolve(key.key)
    try:
        deadline = time.monotonic() + 5
        while (await stored(app, key.id)).last_used_at is None:
            assert time.monotonic() < deadline, "last_used_at never written"
            await asyncio.sleep(0.02)
    finally:
        await resolver.close()


# --- replicas -------------------------------------------------------------------------------


@pytest.fixture
async def replica_buses() -> AsyncIterator[tuple[RedisEventBus, RedisEventBus]]:
    async with replica_bus_pair(REDIS_URL) as buses:
        yield buses


async def test_a_revocation_reaches_the_other_replica_before_the_ttl(
    app: FastAPI, owner: Owner, replica_buses: tuple[RedisEventBus, RedisEventBus]
) -> None:
    bus_one, bus_two = replica_buses
    factory = components(app).session_factory
    one = ApiKeyResolver(factory, bus_one, ttl_seconds=TTL, flush_seconds=3600)
    two = ApiKeyResolver(factory, bus_two, ttl_seconds=TTL, flush_seconds=3600)
    await bus_one.start()
    await bus_two.start()
    key = await issue(app, owner)
    try:
        await one.resolve(key.key)
        await two.resolve(key.key)
        with sql_statements(components(app).engine) as statements:
            await two.resolve(key.key)
        assert statements == []  # warm: only the event can make it look again

        await revoke(app, owner, key.id, bus_one)

        deadline = time.monotonic() + 2
        while True:
            try:
                await two.resolve(key.key)
            except Unauthorized:
                break
            assert time.monotonic() < deadline, "the other replica still accepts the key"
            await asyncio.sleep(0.02)
        with pytest.raises(Unauthorized):
            await one.resolve(key.key)
    finally:
        await one.close()
        await two.close()


# --- after commit ---------------------------------------------------------------------------


async def _organization_named(app: FastAPI, name: str) -> Organization | None:
    async with components(app).session_factory() as session:
        organization: Organization | None = await session.scalar(
            select(Organization).where(Organization.name == name)
        )
        return organization


async def test_after_commit_actions_run_once_the_work_is_committed(app: FastAPI) -> None:
    name = f"Committed {uuid.uuid4().hex[:8]}"
    seen: list[bool] = []

    async def announce() -> None:
        # Another session sees the row: the transaction is over, not merely flushed.
        seen.append(await _organization_named(app, name) is not None)

    async with session_scope(components(app).session_factory) as session:
        session.add(Organization(name=name))
        await session.flush()
        after_commit(session, announce)
        after_commit(session, announce)
        assert seen == []

    assert seen == [True, True]


@pytest.mark.parametrize(
    "failure", [RuntimeError("boom"), NotFound("thing"), asyncio.CancelledError()]
)
async def test_after_commit_actions_do_not_run_after_a_rollback(
    app: FastAPI, failure: BaseException
) -> None:
    name = f"Rolled back {uuid.uuid4().hex[:8]}"
    ran: list[str] = []

    async def announce() -> None:
        ran.append("announced")

    async def unit_of_work() -> None:
        async with session_scope(components(app).session_factory) as session:
            session.add(Organization(name=name))
            await session.flush()
            after_commit(session, announce)
            raise failure

    with pytest.raises(type(failure)):
        await unit_of_work()

    assert ran == []
    assert await _organization_named(app, name) is None


async def test_after_commit_actions_run_when_an_error_keeps_the_work(app: FastAPI) -> None:
    class KeptConflict(Conflict):
        commit = True

    ran: list[str] = []

    async def announce() -> None:
        ran.append("announced")

    async def unit_of_work() -> None:
        async with session_scope(components(app).session_factory) as session:
            after_commit(session, announce)
            raise KeptConflict("kept")

    with pytest.raises(KeptConflict):
        await unit_of_work()

    assert ran == ["announced"]


async def test_a_revocation_that_rolls_back_is_not_announced(app: FastAPI, owner: Owner) -> None:
    bus = ResyncableBus()
    heard: list[dict[str, Any] | None] = []
    bus.subscribe(REVOKED_TOPIC, heard.append)
    key = await issue(app, owner)

    async def failing_request() -> None:
        async with session_scope(components(app).session_factory) as session:
            await ApiKeyService(session, bus).revoke(await owner.access(session), key.id)
            raise RuntimeError("the request failed after the revocation")

    with pytest.raises(RuntimeError):
        await failing_request()

    assert heard == []
    assert (await stored(app, key.id)).revoked_at is None
    await revoke(app, owner, key.id, bus)
    assert heard == [{"key_id": str(key.id)}]
