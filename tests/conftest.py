"""Test harness: one real database per run (SQLite file, or the PostgreSQL named by
BUDAPP_TEST_DATABASE_URL), its schema built by `alembic upgrade head`, every table emptied
before each test; the app runs its real lifespan and is called through ASGI."""

from __future__ import annotations

import asyncio
import copy
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from budapp.adapters.cache import MemoryWindowCounter
from budapp.adapters.storage import ObjectStorage
from budapp.adapters.storage.local import LocalObjectStorage
from budapp.audit.chain import GENESIS_HASH
from budapp.auth.principals import PRINCIPAL_CACHE
from budapp.auth.throttle import LOGIN_THROTTLE
from budapp.catalog.scanning import SCAN_WORKER
from budapp.core import migrate
from budapp.core.auth import AUTHENTICATOR
from budapp.core.components import STORAGE, components
from budapp.gateway.proxy import GATEWAY
from budapp.gateway.routing import ROUTING_CACHE
from budapp.main import create_app
from budapp.registry import metadata
from budapp.settings import Settings
from budapp.usage.meter import USAGE_METER
from tests.factories import World, build_world
from tests.s3server import moto_server, s3_storage

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/budapp_test"


def database_url(tmp_root: Path) -> str:
    return os.environ.get("BUDAPP_TEST_DATABASE_URL") or (
        f"sqlite+aiosqlite:///{tmp_root / 'budapp-test.db'}"
    )


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


async def recreate_postgres_database(url: str) -> None:
    """Drops and creates the test database, so every run starts from nothing."""
    await drop_postgres_database(url, create=True)


async def drop_postgres_database(url: str, *, create: bool = False) -> None:
    """Drops the database `url` names (and creates it again, empty, with `create`)."""
    import asyncpg  # noqa: PLC0415

    parsed = make_url(url)
    admin = await asyncpg.connect(
        user=parsed.username or "postgres",
        password=parsed.password,
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        database="postgres",
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        if create:
            await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("budapp-data")


@pytest.fixture(scope="session")
def db_url(data_dir: Path) -> str:
    url = database_url(data_dir)
    if is_postgres(url):
        asyncio.run(recreate_postgres_database(url))
    migrate.upgrade(url)
    return url


def make_settings(data_dir: Path, db_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": db_url,
        "auto_migrate": False,
        "access_log": False,
        "log_level": "WARNING",
        # Minimal argon2 cost: the tests exercise the logic, not the hardness.
        "password_time_cost": 1,
        "password_memory_kib": 64,
        "admin_password": "bootstrap-password",
        # Webhook tests run workers of their own, with settings made for them.
        "webhook_worker_enabled": False,
        # The storage sweeper's tests run sweeps of their own, at the times they choose.
        "storage_sweep_interval_seconds": 0,
        # The Kubernetes tests reconcile when they choose, and follow rollouts closely.
        "cluster_reconcile_interval_seconds": 0,
        "kubernetes_poll_seconds": 0.1,
        # One process: no other replica to take over from (tests/test_replicas.py runs three).
        "workflow_heartbeat_seconds": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings(data_dir: Path, db_url: str) -> Settings:
    return make_settings(data_dir, db_url)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(autouse=True)
async def clean_state(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Empties every table and the rate-limit counters before each test that uses the app."""
    if "app" not in request.fixturenames:
        yield
        return
    application: FastAPI = request.getfixturevalue("app")
    engine = components(application).engine
    tables = [
        table.name for table in reversed(metadata.sorted_tables) if table.name != "audit_chain_head"
    ]
    if gateway := components(application).get(GATEWAY):
        # Calls of the previous test still in the meter's buffer must not land in this one.
        await gateway.drain()
        await components(application)[USAGE_METER].flush()
    await _empty_tables(engine, tables)
    # Projects' routing is cached by id, and the world's ids repeat from test to test.
    if routing := components(application).get(ROUTING_CACHE):
        routing._entries.clear()
    # Rows were deleted behind the ORM's back, so no change was announced.
    components(application)[PRINCIPAL_CACHE].clear()
    counter = MemoryWindowCounter()
    components(application).window_counter = counter
    components(application)[LOGIN_THROTTLE].counter = counter
    components(application)[AUTHENTICATOR].counter = counter
    yield


async def _empty_tables(engine: AsyncEngine, tables: list[str]) -> None:
    """DELETE in dependency order, on PostgreSQL too: TRUNCATE of every table costs ~180 ms
    there (new files for each table), DELETE of a test's few rows ~6 ms. A background worker
    of the app (the scan worker, the webhook dispatcher) may hold row locks the other way
    round: PostgreSQL then aborts one side as a deadlock, and the cleaning starts over."""
    for attempt in range(5):
        try:
            async with engine.begin() as connection:
                for table in tables:
                    await connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608
                # The migration's genesis head, as a fresh database has it.
                await connection.execute(
                    text("UPDATE audit_chain_head SET last_sequence = 0, last_hash = :genesis"),
                    {"genesis": GENESIS_HASH},
                )
            return
        except DBAPIError as exc:
            if attempt == 4 or "deadlock" not in str(exc).lower():
                raise
            await asyncio.sleep(0.05)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://budapp.test") as http:
        yield http


# The world is built through the API once, then its rows are copied back for each test: the
# same users, sessions and tokens, at a fraction of the cost (seven logins a test was most of
# the suite's time). Rebuilt well before its access tokens could expire.
_WORLD_MAX_AGE = 300.0


@pytest.fixture
async def world(app: FastAPI, client: httpx.AsyncClient) -> World:
    snapshot = getattr(app.state, "test_world", None)
    async with components(app).engine.connect() as connection:
        # A fixture that came first may have written already (and moved the audit chain):
        # then the world is built through the API after it, as it always was.
        pristine = not await connection.scalar(text("SELECT last_sequence FROM audit_chain_head"))
    if not pristine:
        return await build_world(app, client)
    if snapshot is not None and time.monotonic() - snapshot[2] < _WORLD_MAX_AGE:
        built, rows, _ = snapshot
        async with components(app).engine.begin() as connection:
            for table in metadata.sorted_tables:
                if table.name == "audit_chain_head":
                    await connection.execute(table.update().values(**rows[table.name][0]))
                elif rows[table.name]:
                    await connection.execute(insert(table), rows[table.name])
        return copy.deepcopy(built)
    built = await build_world(app, client)
    async with components(app).engine.connect() as connection:
        rows = {
            table.name: [dict(row) for row in (await connection.execute(select(table))).mappings()]
            for table in metadata.sorted_tables
        }
    app.state.test_world = (copy.deepcopy(built), rows, time.monotonic())
    return built


# --- object storage: the app's local directory, or S3 (moto's server on loopback) ---------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStorage]:
    """A storage of the test's own on each backend (a fresh directory, a fresh bucket), so
    that no other test's objects are seen."""
    backend: ObjectStorage
    if request.param == "local":
        backend = LocalObjectStorage(tmp_path / "objects")
    else:
        backend = s3_storage(request.getfixturevalue("s3_endpoint"), f"t-{uuid.uuid4().hex[:12]}")
    await backend.start()
    yield backend
    await backend.close()


@pytest.fixture(params=["local", "s3"])
async def backend(request: pytest.FixtureRequest, app: FastAPI) -> AsyncIterator[str]:
    if request.param == "local":
        yield "local"
        return
    original = components(app)[STORAGE]
    storage = s3_storage(request.getfixturevalue("s3_endpoint"), f"m-{uuid.uuid4().hex[:12]}")
    await storage.start()
    components(app).replace(STORAGE, storage)
    components(app)[SCAN_WORKER].storage = storage
    try:
        yield "s3"
    finally:
        components(app).replace(STORAGE, original)
        components(app)[SCAN_WORKER].storage = original
        await storage.close()
