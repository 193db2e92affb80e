"""The principal cache: a checked access token is answered from memory, and every change that
could make it invalid (logout, deactivation, deletion, a role change, revoked sessions) is
announced after its commit and evicts the user's entries at once, in this process and, over
Redis, in every other."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from budapp.adapters.events import MemoryEventBus
from budapp.adapters.events.redis import RedisEventBus
from budapp.auth.principals import PRINCIPAL_CACHE, PRINCIPALS_CHANGED_TOPIC, PrincipalCache
from budapp.auth.repository import AuthSessionRepository
from budapp.auth.service import TokenAuthenticator
from budapp.auth.tokens import TOKEN_ISSUER
from budapp.core.auth import Principal
from budapp.core.components import components
from budapp.core.db import create_session_factory, session_scope, utcnow
from budapp.core.roles import Role
from budapp.events.service import bind_event_bus
from budapp.users.models import User
from tests.factories import World, login
from tests.redis_buses import replica_bus_pair
from tests.sql_trace import sql_statements

REDIS_URL = os.environ.get("BUDAPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _principal(user_id: uuid.UUID | None = None) -> Principal:
    return Principal(
        user_id=user_id or uuid.uuid4(),
        organization_id=uuid.uuid4(),
        role=Role.USER,
        email="someone@example.com",
        session_id=uuid.uuid4(),
    )


def _touches_sessions(statements: list[str]) -> bool:
    return any("auth_sessions" in statement for statement in statements)


async def _me(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.get("/auth/me", headers=headers)


# --- through the API ------------------------------------------------------------------------


async def test_a_checked_token_is_answered_without_the_database(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["user"].headers
    with sql_statements(components(app).engine) as cold:
        assert (await _me(client, headers)).status_code == 200
    with sql_statements(components(app).engine) as warm:
        for _ in range(5):
            assert (await _me(client, headers)).status_code == 200
    assert _touches_sessions(cold)
    assert not _touches_sessions(warm)


async def test_logout_evicts_at_once_and_spares_the_users_other_sessions(
    client: httpx.AsyncClient, world: World
) -> None:
    user = world["user"]
    first = dict(user.headers)
    second = dict((await login(client, user)).headers)
    for headers in (first, second):
        assert (await _me(client, headers)).status_code == 200  # both warm

    assert (await client.post("/auth/logout", headers=first)).status_code == 204

    assert (await _me(client, first)).status_code == 401
    assert (await _me(client, second)).status_code == 200  # re-checked, still open


async def test_deactivation_and_deletion_lock_a_warm_token_out_at_once(
    client: httpx.AsyncClient, world: World
) -> None:
    admin = world["org_admin"].headers
    user, outsider = world["user"], world["outsider"]
    for account in (user, outsider):
        assert (await _me(client, account.headers)).status_code == 200

    deactivate = await client.put(f"/users/{user.id}", json={"is_active": False}, headers=admin)
    assert deactivate.status_code == 200, deactivate.text
    assert (await client.delete(f"/users/{outsider.id}", headers=admin)).status_code == 204

    for account in (user, outsider):
        assert (await _me(client, account.headers)).status_code == 401, account.email


async def test_a_role_change_applies_to_a_warm_token_at_once(
    client: httpx.AsyncClient, world: World
) -> None:
    user = world["user"]
    assert (await client.get("/users", headers=user.headers)).status_code == 403

    response = await client.put(
        f"/users/{user.id}/roles", json={"role": "org_admin"}, headers=world["org_admin"].headers
    )
    assert response.status_code == 200, response.text

    assert (await _me(client, user.headers)).json()["data"]["role"] == "org_admin"
    assert (await client.get("/users", headers=user.headers)).status_code == 200


async def test_logging_out_everywhere_evicts_every_token_of_the_user(
    client: httpx.AsyncClient, world: World
) -> None:
    user = world["user"]
    first = dict(user.headers)
    second = dict((await login(client, user)).headers)
    other = world["org_admin"].headers
    for headers in (first, second, other):
        assert (await _me(client, headers)).status_code == 200

    response = await client.post("/auth/logout", json={"all_sessions": True}, headers=second)
    assert response.status_code == 204

    assert (await _me(client, first)).status_code == 401
    assert (await _me(client, second)).status_code == 401
    assert (await _me(client, other)).status_code == 200


# --- what announces a change ----------------------------------------------------------------


async def test_a_bulk_session_revocation_announces_its_users_only(
    app: FastAPI, world: World
) -> None:
    cache: PrincipalCache = components(app)[PRINCIPAL_CACHE]
    revoked, spared = _principal(world["user"].id), _principal(world["org_admin"].id)
    cache.put("revoked", revoked, time.time() + 60, cache.mark())
    cache.put("spared", spared, time.time() + 60, cache.mark())

    async with session_scope(components(app).session_factory) as session:
        await AuthSessionRepository(session).revoke_all_for_user(revoked.user_id, "test", utcnow())

    assert cache.get("revoked") is None
    assert cache.get("spared") == spared


async def test_a_change_that_rolls_back_is_not_announced(app: FastAPI, world: World) -> None:
    cache: PrincipalCache = components(app)[PRINCIPAL_CACHE]
    principal = _principal(world["user"].id)
    cache.put("user", principal, time.time() + 60, cache.mark())

    async def deactivate_then_fail() -> None:
        async with session_scope(components(app).session_factory) as session:
            user = await session.get(User, principal.user_id)
            assert user is not None
            user.is_active = False
            await session.flush()
            raise RuntimeError("the unit of work fails after its flush")

    with pytest.raises(RuntimeError):
        await deactivate_then_fail()

    assert cache.get("user") == principal


async def test_an_unchanged_user_announces_nothing(app: FastAPI, world: World) -> None:
    cache: PrincipalCache = components(app)[PRINCIPAL_CACHE]
    principal = _principal(world["user"].id)
    cache.put("user", principal, time.time() + 60, cache.mark())

    async with session_scope(components(app).session_factory) as session:
        user = await session.get(User, principal.user_id)
        assert user is not None
        user.name = user.name  # set, but not changed

    assert cache.get("user") == principal


# --- the cache on its own -------------------------------------------------------------------


def test_a_change_heard_during_a_check_keeps_its_result_out() -> None:
    bus = MemoryEventBus()
    cache = PrincipalCache(bus, ttl_seconds=60)
    principal = _principal()
    mark = cache.mark()
    cache._on_changed({"user_ids": [str(principal.user_id)]})  # arrives while rows are read
    cache.put("token", principal, time.time() + 60, mark)
    assert cache.get("token") is None

    cache.put("token", principal, time.time() + 60, cache.mark())
    assert cache.get("token") == principal


async def test_entries_end_with_the_ttl_or_the_token_whichever_is_first() -> None:
    short_ttl = PrincipalCache(MemoryEventBus(), ttl_seconds=0.05)
    long_ttl = PrincipalCache(MemoryEventBus(), ttl_seconds=300)
    principal = _principal()
    short_ttl.put("token", principal, time.time() + 300, short_ttl.mark())
    long_ttl.put("token", principal, time.time() + 0.05, long_ttl.mark())  # the token's exp
    assert short_ttl.get("token") == long_ttl.get("token") == principal
    await asyncio.sleep(0.1)
    assert short_ttl.get("token") is None
    assert long_ttl.get("token") is None
    assert len(short_ttl) == len(long_ttl) == 0


def test_a_resync_signal_clears_everything() -> None:
    cache = PrincipalCache(MemoryEventBus(), ttl_seconds=60)
    for index in range(3):
        cache.put(f"token-{index}", _principal(), time.time() + 60, cache.mark())
    cache._on_changed(None)
    assert len(cache) == 0


def test_a_ttl_of_zero_turns_the_cache_off(app: FastAPI) -> None:
    cache = PrincipalCache(MemoryEventBus(), ttl_seconds=0)
    assert TokenAuthenticator(components(app)[TOKEN_ISSUER], cache).cache is None


# --- replicas -------------------------------------------------------------------------------


@pytest.fixture
async def replica_buses() -> AsyncIterator[tuple[RedisEventBus, RedisEventBus]]:
    async with replica_bus_pair(REDIS_URL) as buses:
        yield buses


async def test_a_deactivation_reaches_the_other_replica(
    app: FastAPI, world: World, replica_buses: tuple[RedisEventBus, RedisEventBus]
) -> None:
    bus_one, bus_two = replica_buses
    await bus_one.start()
    await bus_two.start()
    other_replica = PrincipalCache(bus_two, ttl_seconds=300)
    heard: list[object] = []
    bus_two.subscribe(PRINCIPALS_CHANGED_TOPIC, heard.append)
    deactivated, untouched = _principal(world["user"].id), _principal(world["org_admin"].id)
    other_replica.put("deactivated", deactivated, time.time() + 300, other_replica.mark())
    other_replica.put("untouched", untouched, time.time() + 300, other_replica.mark())

    # This replica's unit of work, on a factory bound to its own bus.
    factory = create_session_factory(components(app).engine)
    bind_event_bus(factory, bus_one)
    async with session_scope(factory) as session:
        user = await session.get(User, deactivated.user_id)
        assert user is not None
        user.is_active = False

    deadline = time.monotonic() + 2
    while other_replica.get("deactivated") is not None:
        assert time.monotonic() < deadline, "the other replica still trusts the token"
        await asyncio.sleep(0.02)
    assert other_replica.get("untouched") == untouched
    assert heard == [{"user_ids": [str(deactivated.user_id)]}]
