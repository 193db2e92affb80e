"""Database layer: the declarative base shared by every domain's tables, portable column types,
and the async engine and session factory.

The request (or one workflow step) is the unit of work: `core.deps.SessionDep` commits when the
handler returns and rolls back when it raises; services only `flush`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator, Uuid

from budapp.core.errors import BudappError

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid()}


class RecordMixin:
    """UUID primary key and timezone-aware creation/update times, set by budapp (not the
    database) so that they are identical on SQLite and PostgreSQL."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SoftDeleteMixin:
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    options: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **options)
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        return engine
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **options
    )


def _configure_sqlite(dbapi_connection: Any, _: ConnectionPoolEntry) -> None:
    # WAL lets readers proceed during a write; foreign keys are off by default in SQLite;
    # busy_timeout makes concurrent writers wait instead of failing with "database is locked".
    # SQLite has no SHA-256 of its own; the audit chain is verified inside the query with it.
    dbapi_connection.create_function("budapp_sha256", 1, _sha256_hex, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class BudappSession(Session):
    """The sync session behind every AsyncSession budapp opens; cross-cutting flush hooks
    (the audit trail) listen on this class."""


def _sha256_hex(value: str | None) -> str | None:
    return None if value is None else hashlib.sha256(value.encode()).hexdigest()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, sync_session_class=BudappSession
    )


AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT = "budapp.after_commit"


def after_commit(session: AsyncSession, action: AfterCommit) -> None:
    """Runs `action` once the unit of work has committed (and never if it rolls back): events
    and cache invalidations must not announce a change that did not happen."""
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


async def _run_after_commit(session: AsyncSession) -> None:
    for action in session.info.pop(_AFTER_COMMIT, []):
        await action()


async def end_read_transaction(session: AsyncSession) -> None:
    """Gives the connection back to the pool before a long wait (a streamed upload), when the
    unit of work has only read so far: holding it would pin one pooled connection, idle in a
    transaction, per upload. The next query starts a new transaction."""
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("the unit of work has unflushed changes")
    await session.rollback()


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A unit of work: commit on success, roll back on any exception."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
            await _run_after_commit(session)
        except BudappError as exc:
            if exc.commit:
                await session.commit()
                await _run_after_commit(session)
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
