"""Alembic environment: async engines, batch mode so ALTERs work on SQLite."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from budapp.core.db import create_engine
from budapp.registry import metadata
from budapp.settings import Settings

config = context.config


def _database_url() -> str:
    # `budapp migrate` passes the URL in; plain `alembic` falls back to the settings.
    url = config.attributes.get("database_url")
    return url if isinstance(url, str) else Settings().resolved_database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = create_engine(_database_url())
    async with engine.connect() as async_connection:
        await async_connection.run_sync(_configure)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
