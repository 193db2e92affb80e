"""`budapp audit verify`: the operator's check of the chain, on an embedded SQLite database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from budapp.cli import app
from budapp.settings import get_settings

NEW_USER = {"BUDAPP_NEW_USER_PASSWORD": "long-enough-password"}


@pytest.fixture
def cli_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A migrated database of its own, with a few records made through the CLI."""
    monkeypatch.setenv("BUDAPP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("BUDAPP_DATABASE_URL", raising=False)
    monkeypatch.setenv("BUDAPP_PASSWORD_TIME_COST", "1")
    monkeypatch.setenv("BUDAPP_PASSWORD_MEMORY_KIB", "64")
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    assert runner.invoke(app, ["admin", "create-org", "Research"]).exit_code == 0
    for email in ("a@example.com", "b@example.com"):
        args = ["admin", "create-user", "--email", email, "--organization", "Research"]
        assert runner.invoke(app, args, env=NEW_USER).exit_code == 0
    yield tmp_path
    get_settings.cache_clear()


def sql(data_dir: Path, statement: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(data_dir / "budapp.db")) as connection, connection:
        return connection.execute(statement).fetchall()


def verify(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "verify", *args])
    return result.exit_code, " ".join(result.output.split())


def test_verify_accepts_an_intact_chain(cli_data: Path) -> None:
    assert sql(cli_data, "SELECT sequence, action FROM audit_records ORDER BY sequence") == [
        (1, "organization.create"),
        (2, "user.create"),
        (3, "user.create"),
    ]
    code, output = verify()
    assert code == 0, output
    assert "ok: 3 records verified" in output


def test_verify_names_the_tampered_record(cli_data: Path) -> None:
    sql(cli_data, "UPDATE audit_records SET actor_label = 'mallory' WHERE sequence = 2")
    [(record_id,)] = sql(cli_data, "SELECT id FROM audit_records WHERE sequence = 2")
    code, output = verify()
    assert code == 1, output
    assert "broken at sequence 2" in output
    assert "1 records verified before it" in output
    assert "ok:" not in output
    # SQLite keeps the UUID as 32 hex digits; the report prints it in its usual form.
    assert record_id.replace("-", "") in output.replace("-", "")


def test_verify_names_a_deleted_last_record(cli_data: Path) -> None:
    sql(cli_data, "DELETE FROM audit_records WHERE sequence = 3")
    code, output = verify()
    assert code == 1, output
    assert "broken at sequence 3" in output


def test_verify_checks_only_the_range_asked_for(cli_data: Path) -> None:
    sql(cli_data, "UPDATE audit_records SET details = '{}' WHERE sequence = 1")
    code, output = verify("--from-sequence", "2")
    assert code == 0, output
    assert "ok: 2 records verified" in output
    code, output = verify("--from-sequence", "1", "--to-sequence", "2")
    assert code == 1
    assert "broken at sequence 1" in output


def test_verify_refuses_a_sequence_below_one(cli_data: Path) -> None:
    code, _ = verify("--from-sequence", "0")
    assert code == 2
