"""Migrations on the database under test: empty -> head -> base -> head, and the migrated
schema matches the models exactly (no pending autogenerate diff)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, make_url

from budapp.core import migrate
from budapp.core.db import create_engine
from budapp.registry import metadata
from tests.conftest import database_url, is_postgres, recreate_postgres_database

TABLES = {
    "organizations",
    "users",
    "projects",
    "project_members",
    "auth_sessions",
    "refresh_tokens",
    "audit_records",
    "audit_chain_head",
    "benchmark_runs",
    "benchmark_requests",
    "credentials",
    "api_keys",
    "user_identities",
    "oidc_logins",
    "workflow_executors",
    "workflow_runs",
    "workflow_steps",
    "endpoints",
    "endpoint_replicas",
    "notifications",
    "webhooks",
    "webhook_deliveries",
    "clusters",
    "models",
    "model_tags",
    "model_files",
    "scan_jobs",
    "model_evaluations",
    "datasets",
    "dataset_versions",
    "routers",
    "project_rate_limits",
    "usage_records",
    "usage_hourly",
    "usage_daily",
}


@pytest.fixture
def scratch_url(tmp_path: Path) -> str:
    url = database_url(tmp_path)
    if is_postgres(url):
        url = (
            make_url(url)
            .set(database=f"{make_url(url).database}_migrations")
            .render_as_string(hide_password=False)
        )
        asyncio.run(recreate_postgres_database(url))
    return url


def _inspect(url: str, probe: Any) -> Any:
    async def run() -> Any:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(probe)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def test_upgrade_from_empty_to_head_creates_every_table(scratch_url: str) -> None:
    migrate.upgrade(scratch_url)
    assert _inspect(scratch_url, _tables) == TABLES


def test_migrated_schema_matches_the_models(scratch_url: str) -> None:
    migrate.upgrade(scratch_url)
    assert _inspect(scratch_url, _diff) == []


def test_downgrade_to_base_and_upgrade_again(scratch_url: str) -> None:
    migrate.upgrade(scratch_url)
    migrate.downgrade(scratch_url, "base")
    assert _inspect(scratch_url, _tables) == set()
    migrate.upgrade(scratch_url)
    assert _inspect(scratch_url, _tables) == TABLES


def test_single_head() -> None:
    assert migrate.current_head() is not None
