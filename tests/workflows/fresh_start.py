"""Run as a separate process by test_recovery: starts the workflow engine against a fresh
PostgreSQL database (DBOS builds its schema, with indexes CONCURRENTLY) while a transaction of
this process is open on that database, as a background worker's would be at start-up. The
transaction can only end if the event loop keeps running while DBOS migrates."""

from __future__ import annotations

import asyncio
import sys

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from budapp.adapters.cache import MemoryWindowCounter
from budapp.adapters.events.memory import MemoryEventBus
from budapp.core import migrate
from budapp.core.components import Components
from budapp.core.keyring import Keyring
from budapp.core.references import ReferenceGuard
from budapp.settings import Settings
from budapp.workflows.engine import WorkflowEngine, system_database_url


async def main(database_url: str) -> None:
    url = make_url(database_url)
    connection = await asyncpg.connect(
        user=url.username or "postgres", host=url.host, port=url.port, database=url.database
    )
    # Repeatable read keeps its snapshot between statements, as a statement in progress does:
    # CREATE INDEX CONCURRENTLY waits for it.
    transaction = connection.transaction(isolation="repeatable_read")
    await transaction.start()
    await connection.execute("SELECT 1")

    async def finish() -> None:
        await asyncio.sleep(1)
        await transaction.commit()

    worker = asyncio.create_task(finish())
    engine = WorkflowEngine(
        system_database_url(database_url, ""), executor_id="fresh-start", concurrency=1
    )
    database = create_async_engine(database_url)
    # What the engine reads at start is the database; the other parts are bare stand-ins.
    components = Components(
        settings=Settings(database_url=database_url),
        engine=database,
        session_factory=async_sessionmaker(database),
        keyring=Keyring({"k": bytes(32)}, "k"),
        event_bus=MemoryEventBus(),
        window_counter=MemoryWindowCounter(),
        references=ReferenceGuard(),
        trusted_networks=[],
    )
    await engine.start(components)
    await worker
    await engine.stop()
    await database.dispose()
    await connection.close()
    sys.stdout.write("STARTED\n")


if __name__ == "__main__":
    migrate.upgrade(sys.argv[1])  # budapp's own tables: the engine reads workflow_runs
    asyncio.run(main(sys.argv[1]))
