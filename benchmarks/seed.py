"""Fresh benchmark database: `reset` empties it, `seed` fills it once migrated.

    python -m benchmarks.seed reset   # PostgreSQL: DROP + CREATE DATABASE; SQLite: delete the file
    budapp migrate
    python -m benchmarks.seed seed    # one org_admin with a known password, 10,000 projects
    python -m benchmarks.seed version # the database server's version, for the report

The database comes from the usual settings (BUDAPP_DATABASE_URL, BUDAPP_DATA_DIR); the account
from BENCH_EMAIL and BENCH_PASSWORD, the project count from BENCH_PROJECTS. Nothing secret is
printed. The user is created through budapp's own service (`budapp.admin.create_user`), so its
password is hashed with the configured (production default) argon2 parameters; the projects are
bulk-inserted in batches, with deterministic ids, names and creation times.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from budapp.admin import create_user
from budapp.core.db import create_engine, create_session_factory
from budapp.core.roles import ProjectRole, Role
from budapp.registry import Organization, Project, ProjectMember
from budapp.settings import Settings

ORGANIZATION = "Bench"
BATCH = 1_000
# Projects the benchmark user is an explicit member of (listed by GET /auth/me).
MEMBERSHIPS = 10
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _settings() -> Settings:
    return Settings()


def reset(settings: Settings) -> None:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database:
            for suffix in ("", "-wal", "-shm"):
                Path(database + suffix).unlink(missing_ok=True)
        print(f"reset: removed SQLite database {database}")
        return
    asyncio.run(_recreate_postgres(url))
    print(f"reset: recreated PostgreSQL database {make_url(url).database}")


async def _recreate_postgres(url: str) -> None:
    import asyncpg  # noqa: PLC0415 - PostgreSQL only

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
        await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()


async def seed(settings: Settings, *, email: str, password: str, projects: int) -> None:
    user_id = await create_user(
        settings,
        email=email,
        password=password,
        name="Benchmark admin",
        role=Role.ORG_ADMIN,
        organization=ORGANIZATION,
    )
    engine = create_engine(settings.resolved_database_url)
    rng = random.Random(20261124)
    try:
        async with create_session_factory(engine)() as session:
            organization_id = await session.scalar(
                select(Organization.id).where(Organization.name == ORGANIZATION)
            )
            assert organization_id is not None
            project_ids: list[uuid.UUID] = []
            for start in range(0, projects, BATCH):
                rows = []
                for number in range(start, min(start + BATCH, projects)):
                    project_id = uuid.UUID(int=rng.getrandbits(128), version=4)
                    created = EPOCH + timedelta(seconds=number)
                    project_ids.append(project_id)
                    rows.append(
                        {
                            "id": project_id,
                            "organization_id": organization_id,
                            "name": f"project-{number:05d}",
                            "description": f"Benchmark project number {number}",
                            "owner_id": user_id,
                            "settings": {"tier": "standard", "replicas": number % 4 + 1},
                            "created_at": created,
                            "updated_at": created,
                        }
                    )
                await session.execute(insert(Project), rows)
            members = [
                {
                    "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                    "organization_id": organization_id,
                    "project_id": project_id,
                    "user_id": user_id,
                    "role": ProjectRole.ADMIN,
                    "extra_permissions": [],
                    "created_at": EPOCH,
                    "updated_at": EPOCH,
                }
                for project_id in project_ids[-MEMBERSHIPS:]
            ]
            if members:
                await session.execute(insert(ProjectMember), members)
            await session.commit()
        # Fresh statistics, as autovacuum/ANALYZE would have on a database in service.
        async with engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()
    finally:
        await engine.dispose()
    backend = make_url(settings.resolved_database_url).get_backend_name()
    print(
        f"seed: {backend}: organization {ORGANIZATION!r}, 1 org_admin ({email}), "
        f"{projects} projects, {min(MEMBERSHIPS, projects)} memberships"
    )


async def server_version(settings: Settings) -> None:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                version = await connection.scalar(text("SELECT sqlite_version()"))
            else:
                version = await connection.scalar(text("SHOW server_version"))
    finally:
        await engine.dispose()
    print(version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["reset", "seed", "version"])
    args = parser.parse_args()
    settings = _settings()
    if args.action == "reset":
        reset(settings)
        return
    if args.action == "version":
        asyncio.run(server_version(settings))
        return
    asyncio.run(
        seed(
            settings,
            email=os.environ.get("BENCH_EMAIL", "bench-admin@example.com"),
            password=os.environ["BENCH_PASSWORD"],
            projects=int(os.environ.get("BENCH_PROJECTS", "10000")),
        )
    )


if __name__ == "__main__":
    main()
