from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from budapp.settings import Settings


def test_embedded_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BUDAPP_DATABASE_URL", "BUDAPP_PORT", "BUDAPP_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.port == 9081
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.resolved_database_url.endswith("budapp.db")
    assert settings.should_auto_migrate
    assert settings.redis_url == ""


def test_postgres_is_not_migrated_automatically() -> None:
    settings = Settings(database_url="postgresql+asyncpg://db/budapp")
    assert not settings.should_auto_migrate
    assert Settings(database_url="postgresql+asyncpg://db/x", auto_migrate=True).should_auto_migrate


def test_trusted_proxies_accept_a_comma_list_with_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUDAPP_TRUSTED_PROXIES", "10.0.0.1, 10.1.0.0/16")
    assert Settings().trusted_proxies == ["10.0.0.1", "10.1.0.0/16"]


def test_trusted_proxies_refuse_garbage() -> None:
    with pytest.raises(ValidationError):
        Settings(trusted_proxies=["not-an-address"])


def test_api_prefix_trailing_slash_is_dropped() -> None:
    assert Settings(api_prefix="/api/").api_prefix == "/api"
    with pytest.raises(ValidationError):
        Settings(api_prefix="api")


def test_storage_defaults_to_a_directory_under_data_dir(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.storage_backend == "local"
    assert settings.resolved_storage_dir == tmp_path / "objects"


def test_s3_part_size_must_cover_the_largest_file() -> None:
    with pytest.raises(ValidationError, match="10,000 parts"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            storage_backend="s3",
            s3_bucket="b",
            s3_part_size_bytes=5 * 1024 * 1024,
            model_file_max_bytes=100 * 1024**3,
        )


def test_usage_retention_is_90_days_and_0_keeps_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUDAPP_USAGE_RETENTION_DAYS", raising=False)
    assert Settings(_env_file=None).usage_retention_days == 90  # type: ignore[call-arg]
    monkeypatch.setenv("BUDAPP_USAGE_RETENTION_DAYS", "0")
    assert Settings(_env_file=None).usage_retention_days == 0  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(usage_retention_days=-1)


def test_storage_sweeper_defaults_and_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORPHAN_GRACE_HOURS", "DELETED_RETENTION_DAYS", "SWEEP_INTERVAL_SECONDS"):
        monkeypatch.delenv(f"BUDAPP_STORAGE_{name}", raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.storage_orphan_grace_hours == 24
    assert settings.storage_deleted_retention_days == 30
    assert settings.storage_sweep_interval_seconds == 6 * 3600
    monkeypatch.setenv("BUDAPP_STORAGE_SWEEP_INTERVAL_SECONDS", "0")
    monkeypatch.setenv("BUDAPP_STORAGE_DELETED_RETENTION_DAYS", "0")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.storage_sweep_interval_seconds, settings.storage_deleted_retention_days) == (
        0,
        0,
    )
    # No grace at all would sweep away uploads still in flight.
    with pytest.raises(ValidationError):
        Settings(storage_orphan_grace_hours=0)
