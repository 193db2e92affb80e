"""budapp settings: one class, read from `BUDAPP_*` environment variables and an optional `.env`.

Every setting has an embedded default so that `budapp serve` works on a laptop with nothing
else installed; production overrides the database, cache and identity settings
(docs/configuration.md).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "budapp"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BUDAPP_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- service -------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=9081, ge=1, le=65535)
    api_prefix: str = Field(default="", pattern=r"^(/[A-Za-z0-9_-]+)*$")
    data_dir: Path = DEFAULT_DATA_DIR
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    access_log: bool = True
    # Largest request body accepted by management routes (uploads set their own limit).
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    # --- database ------------------------------------------------------------------------------
    # Empty means the embedded SQLite file `<data_dir>/budapp.db`.
    database_url: str = ""
    database_pool_size: int = Field(default=10, ge=1)
    database_echo: bool = False
    # None: migrate on start for SQLite only; production runs `budapp migrate` as a release step.
    auto_migrate: bool | None = None

    # --- cache / rate limits -------------------------------------------------------------------
    # Empty means in-process (single replica); set to redis://... when running several replicas.
    redis_url: str = ""

    # --- identity ------------------------------------------------------------------------------
    jwt_issuer: str = "budapp"
    jwt_audience: str = "budapp"
    # PEM of an Ed25519 private key, inline or as a file; neither set: generated in data_dir.
    jwt_private_key: SecretStr | None = None
    jwt_private_key_file: Path | None = None
    access_token_ttl_seconds: int = Field(default=900, ge=30)
    refresh_token_ttl_seconds: int = Field(default=14 * 24 * 3600, ge=60)
    # argon2id cost parameters (RFC 9106 "second recommended option" by default).
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=64)
    password_min_length: int = Field(default=8, ge=1)
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)
    login_max_attempts_per_address: int = Field(default=30, ge=1)
    login_address_window_seconds: int = Field(default=60, ge=1)
    # Proxies (addresses or CIDR ranges) whose X-Forwarded-For is believed when finding the
    # client address.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- API keys ----------------------------------------------------------------------------
    # How long a resolved key is trusted without the database; revocations are also pushed
    # to every replica at once (over Redis when configured).
    api_key_cache_ttl_seconds: float = Field(default=30.0, ge=0)
    # Last-used times are written in one batch this often, never per request.
    api_key_usage_flush_seconds: float = Field(default=10.0, gt=0)

    # --- secrets at rest -------------------------------------------------------------------
    # `kid:base64key[,kid:base64key]` (first is primary), or a keyring file; neither set: a
    # keyring generated in data_dir on first start. See docs/configuration.md.
    encryption_keys: SecretStr | None = None
    encryption_key_file: Path | None = None

    # --- object storage ------------------------------------------------------------------
    # `local`: files under `storage_dir` (default `<data_dir>/objects`); `s3`: any S3 API
    # (AWS S3, MinIO) with the settings below.
    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path | None = None
    s3_bucket: str = ""
    # Empty: AWS's own endpoint for the region; MinIO: http://minio:9000
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    # Neither set: boto3's default chain (environment, instance profile, web identity).
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    # Objects larger than one part go up as a multipart upload; each part is retried alone.
    # S3 allows 10,000 parts: the part size bounds the largest object (8 MiB: 78 GiB).
    s3_part_size_bytes: int = Field(
        default=8 * 1024 * 1024, ge=5 * 1024 * 1024, le=5 * 1024 * 1024 * 1024
    )
    # Parts of one upload sent at once; each costs a part's worth of memory.
    s3_upload_concurrency: int = Field(default=2, ge=1, le=16)
    s3_max_attempts: int = Field(default=5, ge=1)
    # Create the bucket on start when it is missing (MinIO and tests; off for AWS).
    s3_create_bucket: bool = False

    # --- uploads: models and datasets --------------------------------------------------------
    # Largest single model file, and largest whole upload request (all files of a model).
    model_file_max_bytes: int = Field(default=64 * 1024**3, ge=1024)
    model_upload_max_bytes: int = Field(default=256 * 1024**3, ge=1024)
    dataset_max_bytes: int = Field(default=1024**3, ge=1024)
    dataset_max_rows: int = Field(default=10_000_000, ge=1)
    dataset_preview_rows: int = Field(default=20, ge=1, le=1000)
    # The safety scan: how often idle workers look for queued scans, how long a claimed scan
    # is reserved before another replica may take it over, and zip-bomb limits.
    scan_poll_seconds: float = Field(default=5.0, gt=0)
    scan_lease_seconds: int = Field(default=1800, ge=10)
    scan_max_attempts: int = Field(default=3, ge=1)
    scan_zip_max_ratio: int = Field(default=100, ge=1)
    scan_zip_max_bytes: int = Field(default=128 * 1024**3, ge=1024)

    # --- bootstrap -----------------------------------------------------------------------------
    admin_email: str = "admin@budapp.local"
    admin_password: SecretStr | None = None
    default_organization: str = "Default"

    @field_validator("api_prefix", mode="before")
    @classmethod
    def _strip_trailing_slash(cls, value: object) -> object:
        return value.rstrip("/") if isinstance(value, str) else value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        # `BUDAPP_TRUSTED_PROXIES=10.0.0.1,10.1.0.0/16` as well as a JSON list.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry, strict=False)
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'budapp.db'}"

    @property
    def inline_encryption_keys(self) -> str | None:
        return self.encryption_keys.get_secret_value() if self.encryption_keys else None

    @model_validator(mode="after")
    def _parts_cover_the_largest_file(self) -> Settings:
        if self.storage_backend == "s3" and self.s3_part_size_bytes * 10_000 < max(
            self.model_file_max_bytes, self.dataset_max_bytes
        ):
            raise ValueError(
                "BUDAPP_S3_PART_SIZE_BYTES x 10,000 parts must cover BUDAPP_MODEL_FILE_MAX_BYTES "
                "and BUDAPP_DATASET_MAX_BYTES"
            )
        return self

    @property
    def resolved_storage_dir(self) -> Path:
        return self.storage_dir or self.data_dir / "objects"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate


@lru_cache
def get_settings() -> Settings:
    return Settings()
