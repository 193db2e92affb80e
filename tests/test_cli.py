from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from budapp.cli import app
from budapp.core.db import create_engine
from budapp.settings import get_settings


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CLI pointed at an embedded SQLite database of its own."""
    monkeypatch.setenv("BUDAPP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("BUDAPP_DATABASE_URL", raising=False)
    monkeypatch.setenv("BUDAPP_PASSWORD_TIME_COST", "1")
    monkeypatch.setenv("BUDAPP_PASSWORD_MEMORY_KIB", "64")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _count_users(data_dir: Path) -> list[tuple[str, str]]:
    async def run() -> list[tuple[str, str]]:
        from sqlalchemy import text  # noqa: PLC0415

        engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'budapp.db'}")
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT email, role FROM users ORDER BY email"))
            result = [(row[0], row[1]) for row in rows]
        await engine.dispose()
        return result

    return asyncio.run(run())


def test_migrate_creates_the_database(cli_env: Path) -> None:
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert (cli_env / "budapp.db").exists()


def test_admin_create_user_for_scripts(cli_env: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["admin", "create-user", "--email", "Ops@Example.com", "--role", "org_admin"],
        env={"BUDAPP_NEW_USER_PASSWORD": "long-enough-password"},
    )
    assert result.exit_code == 0, result.output
    assert _count_users(cli_env) == [("ops@example.com", "org_admin")]
    assert "long-enough-password" not in result.output


def test_admin_create_user_reports_duplicates(cli_env: Path) -> None:
    args = ["admin", "create-user", "--email", "dup@example.com"]
    env = {"BUDAPP_NEW_USER_PASSWORD": "long-enough-password"}
    assert CliRunner().invoke(app, args, env=env).exit_code == 0
    again = CliRunner().invoke(app, args, env=env)
    assert again.exit_code == 1
    assert "CONFLICT" in again.output


def test_admin_create_user_rejects_short_password(cli_env: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["admin", "create-user", "--email", "short@example.com"],
        env={"BUDAPP_NEW_USER_PASSWORD": "short"},
    )
    assert result.exit_code == 1
    assert _count_users(cli_env) == []


def test_admin_create_org(cli_env: Path) -> None:
    result = CliRunner().invoke(app, ["admin", "create-org", "Research"])
    assert result.exit_code == 0, result.output
    again = CliRunner().invoke(app, ["admin", "create-org", "Research"])
    assert again.exit_code == 1


def test_storage_sweep_dry_run_then_for_real(cli_env: Path) -> None:
    models = cli_env / "objects" / "models" / "org" / "model"
    models.mkdir(parents=True)
    orphan, in_flight = models / str(uuid.uuid4()), models / str(uuid.uuid4())
    orphan.write_bytes(b"left by a failed upload")
    in_flight.write_bytes(b"being uploaded")
    two_days_ago = time.time() - 2 * 86400
    os.utime(orphan, (two_days_ago, two_days_ago))

    dry = CliRunner().invoke(app, ["storage", "sweep", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "2 objects seen; would delete 1 (1 unreferenced" in dry.output
    assert orphan.exists()

    swept = CliRunner().invoke(app, ["storage", "sweep"])
    assert swept.exit_code == 0, swept.output
    assert "deleted 1 (1 unreferenced" in swept.output
    assert not orphan.exists()
    assert in_flight.exists()
