"""budapp settings: one class, read from `BUDAPP_*` environment variables and an optional `.env`.

Every setting has an embedded default so that `budapp serve` works on a laptop with nothing
else installed; production overrides the database, cache and identity settings
(docs/configuration.md).
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "budapp"


RoleName = Literal["super_admin", "org_admin", "project_admin", "user"]


class OidcProviderSettings(BaseModel):
    """One OpenID Connect issuer (a Keycloak realm, an Entra tenant, ...). See docs/sso.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Short name used in `/auth/oauth/login?provider=<name>`.
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    # Exactly as in the tokens' `iss` claim, e.g. https://sso.example.com/realms/acme.
    issuer: str
    client_id: str
    client_secret: SecretStr | None = None
    # Required in the `aud` claim of bearer tokens; defaults to client_id.
    audience: str | None = None
    # Organisation (name or id) every user of this issuer belongs to: one realm per tenant.
    # None: the organisation is read from the token's `org_id` claim instead.
    organization: str | None = None
    # Dotted paths of claims holding role names; `{client_id}` is replaced by the client id.
    roles_claims: list[str] = Field(
        default_factory=lambda: ["realm_access.roles", "resource_access.{client_id}.roles"]
    )
    # Provider role name -> budapp role; unmapped names are ignored. Merged over the
    # defaults (super_admin/super-admin, org_admin/org-admin/admin, project_admin/...).
    role_mapping: dict[str, RoleName] = Field(default_factory=dict)
    default_role: RoleName = "user"
    # A provider may only grant super_admin when the operator says so.
    allow_super_admin: bool = False
    # Link a first login to an existing budapp account of the same organisation by e-mail,
    # only when the provider says the address is verified.
    link_verified_email: bool = True
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])

    @property
    def expected_audience(self) -> str:
        return self.audience or self.client_id


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BUDAPP_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- service -------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=9081, ge=1, le=65535)
    # On SIGTERM, how long requests in flight (and open WebSockets) may take before the
    # server closes them and runs its shutdown (a pod's terminationGracePeriodSeconds is longer).
    shutdown_timeout_seconds: float = Field(default=25.0, gt=0, le=3600)
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
    # How long a checked access token is trusted without the database (0: check every request).
    # Logout, deactivation and role changes are also pushed to every replica at once (over Redis
    # when configured); the TTL bounds what a lost message or another process's change can miss.
    principal_cache_ttl_seconds: float = Field(default=10.0, ge=0)
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

    # --- single sign-on (OpenID Connect) ------------------------------------------------------
    # `local`: password login only. `oidc`: identity providers; password login is refused
    # except for super admins (break-glass), unless oidc_allow_password_login is set.
    identity_mode: Literal["local", "oidc"] = "local"
    # JSON list of provider objects (OidcProviderSettings), one per issuer.
    oidc_providers: list[OidcProviderSettings] = Field(default_factory=list)
    oidc_allow_password_login: bool = False
    # Where browsers reach budapp; the OAuth callback is `<public_url><prefix>/auth/oauth/callback`.
    # Empty: http://<host>:<port>.
    public_url: str = ""
    # Pages a login or logout may send the browser back to (scheme://host[:port][/path]
    # prefixes). Anything else is refused: no open redirects.
    oidc_redirect_targets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    oidc_login_ttl_seconds: int = Field(default=600, ge=30)
    oidc_leeway_seconds: int = Field(default=60, ge=0)
    # Keys are refetched at most this often when a token names an unknown `kid`.
    oidc_jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    # ... and at least this often otherwise (provider rotation without restart).
    oidc_jwks_max_age_seconds: float = Field(default=3600.0, gt=0)
    oidc_http_timeout_seconds: float = Field(default=5.0, gt=0)

    # --- workflows -------------------------------------------------------------------------
    # Where the workflow engine (DBOS) keeps its state. Empty: budapp's PostgreSQL database
    # (schema `dbos`), or `workflows.db` beside the SQLite file.
    workflow_database_url: str = ""
    # This replica's stable name: after a crash, a replica restarted under the same name
    # resumes the workflows it was running (use the pod name of a StatefulSet).
    replica_id: str = Field(default_factory=lambda: socket.gethostname() or "budapp")
    # Workflows one replica runs at once; more wait in the queue for any replica.
    workflow_concurrency: int = Field(default=8, ge=1, le=256)
    # Every replica records a heartbeat this often; 0 turns heartbeats and takeover off.
    workflow_heartbeat_seconds: float = Field(default=10.0, ge=0)
    # A replica silent this long is presumed dead: a live one takes over its workflows.
    workflow_takeover_seconds: float = Field(default=60.0, gt=0)

    # --- service-to-service --------------------------------------------------------------------
    # Shared token for `/internal/*` routes, sent as `X-API-Token` (or as `dapr-api-token` by a
    # Dapr sidecar). Unset: internal routes refuse every call. Also read from APP_API_TOKEN.
    app_api_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("BUDAPP_APP_API_TOKEN", "APP_API_TOKEN")
    )

    # --- API keys ----------------------------------------------------------------------------
    # How long a resolved key is trusted without the database; revocations are also pushed
    # to every replica at once (over Redis when configured).
    api_key_cache_ttl_seconds: float = Field(default=30.0, ge=0)
    # Last-used times are written in one batch this often, never per request.
    api_key_usage_flush_seconds: float = Field(default=10.0, gt=0)

    # --- gateway (/v1) ----------------------------------------------------------------------
    # Mount the OpenAI-compatible gateway at /v1 in `budapp serve` (`budapp gateway` runs it alone).
    gateway_enabled: bool = True
    gateway_port: int = Field(default=9082, ge=1, le=65535)
    # Connections to backends, pooled and kept alive, for all targets together.
    gateway_max_connections: int = Field(default=1000, ge=1)
    gateway_max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # How long a project's routers and limits are used from memory; edits are also pushed to
    # every replica at once over the event bus.
    gateway_config_ttl_seconds: float = Field(default=60.0, ge=0)
    # Metered calls are written in batches this often (or when a batch fills), never per call.
    gateway_usage_flush_seconds: float = Field(default=2.0, gt=0)
    gateway_usage_batch_size: int = Field(default=500, ge=1)
    # Calls kept in memory while the database cannot be written; beyond this the oldest go.
    gateway_usage_max_buffered: int = Field(default=1_000_000, ge=1000)
    # Per-call usage rows (what GET /endpoints/{id}/metrics reads) older than this are deleted;
    # the hourly and daily sums (GET /usage) are kept forever. 0 keeps the calls forever too.
    usage_retention_days: int = Field(default=90, ge=0)

    # --- benchmarks ---------------------------------------------------------------------------
    # Where benchmarks of routers reach budapp's gateway (/v1 is appended). Empty: this
    # server's own address (http://BUDAPP_HOST:BUDAPP_PORT, 127.0.0.1 for 0.0.0.0); set it
    # when the gateway runs apart (`budapp gateway`) or behind a load balancer.
    gateway_url: str = Field(default="", pattern=r"^(https?://[^\s/]+(/[^\s]*)?)?$")
    # Ceilings no benchmark can exceed: the request rate (also enforced between request
    # starts of a closed loop), requests in flight, and a whole run's duration.
    benchmark_max_rate: float = Field(default=1000.0, gt=0)
    benchmark_max_concurrency: int = Field(default=512, ge=1)
    benchmark_max_duration_seconds: float = Field(default=3600.0, gt=0)
    # Benchmarks of user-given URLs may target loopback and private addresses. None: allowed
    # on the embedded SQLite default (a laptop), refused otherwise.
    benchmark_allow_private_urls: bool | None = None

    # --- real-time events (GET /ws) -----------------------------------------------------------
    # Each connection is pinged, and its access token checked again, this often: a logout
    # ends a stream within one heartbeat.
    ws_heartbeat_seconds: float = Field(default=25.0, gt=0)
    # A client that takes longer than this to accept one message is disconnected.
    ws_send_timeout_seconds: float = Field(default=10.0, gt=0)
    # Events waiting for one client; when full, the client is dropped (close code 4408).
    ws_queue_size: int = Field(default=256, ge=1)

    # --- webhooks ------------------------------------------------------------------------------
    # Run the delivery worker in this process (every replica may: deliveries are claimed once).
    webhook_worker_enabled: bool = True
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    # Retry n waits about base * 2^(n-1) seconds (half of it random), at most backoff_max.
    webhook_backoff_base_seconds: float = Field(default=10.0, ge=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, ge=0)
    # The worker also wakes at once when a delivery is queued (over the event bus).
    webhook_poll_seconds: float = Field(default=5.0, gt=0)
    webhook_batch_size: int = Field(default=10, ge=1, le=100)
    # None: allowed on the embedded SQLite default (a laptop), refused otherwise.
    webhook_allow_private_destinations: bool | None = None

    # --- secrets at rest -------------------------------------------------------------------
    # `kid:base64key[,kid:base64key]` (first is primary), or a keyring file; neither set: a
    # keyring generated in data_dir on first start. See docs/configuration.md.
    encryption_keys: SecretStr | None = None
    encryption_key_file: Path | None = None

    # --- clusters and local model runtimes ------------------------------------------------------
    # None: register this host as the `local` cluster on first start of the embedded default
    # (SQLite) only. Never registered again once an operator deleted it.
    local_cluster_auto_register: bool | None = None
    local_cluster_name: str = Field(default="local", min_length=1, max_length=255)
    # Timeout of each call to a budcluster service or a Kubernetes API server.
    cluster_request_timeout_seconds: float = Field(default=10.0, gt=0)
    # How often a Kubernetes rollout is looked at (the pod and its events) while deploying.
    kubernetes_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    # How often what Kubernetes clusters run is compared with what budapp wants (first run a
    # few seconds after start-up); 0 turns it off.
    cluster_reconcile_interval_seconds: float = Field(default=300.0, ge=0)
    # nvidia-smi, looked up on PATH unless a path; absent: the local host reports no GPUs.
    nvidia_smi: str = "nvidia-smi"
    # Runtime state file and logs; empty: `<data_dir>/runtimes`.
    runtime_dir: Path | None = None
    # More runtime templates (`<name>.yaml`), overriding the shipped ones by name.
    runtime_templates_dir: Path | None = None
    runtime_host: str = "127.0.0.1"
    runtime_port_min: int = Field(default=20000, ge=1024, le=65535)
    runtime_port_max: int = Field(default=20999, ge=1024, le=65535)
    # A runtime that dies more than `max_restarts` times within the window is FAILED.
    runtime_max_restarts: int = Field(default=5, ge=0)
    runtime_restart_window_seconds: float = Field(default=300.0, gt=0)
    runtime_backoff_initial_seconds: float = Field(default=1.0, gt=0)
    runtime_backoff_max_seconds: float = Field(default=60.0, gt=0)
    # SIGTERM, then SIGKILL after this many seconds.
    runtime_stop_grace_seconds: float = Field(default=10.0, gt=0)
    runtime_log_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    runtime_log_backups: int = Field(default=2, ge=0)
    # False: runtimes outlive a budapp shutdown and the next start adopts them.
    runtime_stop_on_shutdown: bool = True
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
    # The storage sweeper (docs/deployment.md): objects no row points at are deleted once
    # older than the grace period (an upload in flight is younger); the files of models and
    # datasets soft-deleted longer ago than the retention are deleted (0 days: never).
    # It runs in `budapp serve` this often (0: never; `budapp storage sweep` runs it by hand).
    storage_orphan_grace_hours: int = Field(default=24, ge=1)
    storage_deleted_retention_days: int = Field(default=30, ge=0)
    storage_sweep_interval_seconds: float = Field(default=6 * 3600.0, ge=0)

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

    @field_validator("trusted_proxies", "oidc_redirect_targets", mode="before")
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

    @field_validator("oidc_providers")
    @classmethod
    def _unique_providers(cls, value: list[OidcProviderSettings]) -> list[OidcProviderSettings]:
        names = [provider.name for provider in value]
        issuers = [provider.issuer.rstrip("/") for provider in value]
        if len(set(names)) != len(names) or len(set(issuers)) != len(issuers):
            raise ValueError("OIDC provider names and issuers must be unique")
        return value

    @property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @model_validator(mode="after")
    def _port_range(self) -> Settings:
        if self.runtime_port_min > self.runtime_port_max:
            raise ValueError("runtime_port_min must not exceed runtime_port_max")
        if 0 < self.workflow_takeover_seconds <= self.workflow_heartbeat_seconds * 2:
            # A live replica that misses one beat must not be taken over.
            raise ValueError(
                "workflow_takeover_seconds must exceed twice workflow_heartbeat_seconds"
            )
        return self

    @property
    def resolved_runtime_dir(self) -> Path:
        return self.runtime_dir or self.data_dir / "runtimes"

    @property
    def should_register_local_cluster(self) -> bool:
        if self.local_cluster_auto_register is None:
            return self.is_sqlite
        return self.local_cluster_auto_register

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
    def webhook_private_destinations_allowed(self) -> bool:
        allowed = self.webhook_allow_private_destinations
        return self.is_sqlite if allowed is None else allowed

    @property
    def benchmark_private_urls_allowed(self) -> bool:
        allowed = self.benchmark_allow_private_urls
        return self.is_sqlite if allowed is None else allowed

    @property
    def resolved_gateway_url(self) -> str:
        if self.gateway_url:
            return self.gateway_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate


@lru_cache
def get_settings() -> Settings:
    return Settings()
