from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AnyHttpUrl, BaseModel, Field, SecretStr, StringConstraints, model_validator

from budapp.clusters.models import ClusterProviderKind, ClusterStatus
from budapp.core.envelope import PageParams
from budapp.core.schemas import Description, Name, RecordRead, RequestSchema

Token = Annotated[SecretStr, Field(min_length=1, max_length=4096)]
AppId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]


class BudclusterConnection(RequestSchema):
    # The budcluster service itself, or the Dapr sidecar (e.g. http://localhost:3500) when
    # `dapr_app_id` is set.
    base_url: AnyHttpUrl
    dapr_app_id: AppId | None = None
    # Sent as `Authorization: Bearer`; stored encrypted, never returned.
    token: Token | None = None
    # Sent as the `dapr-api-token` header to the sidecar; stored encrypted, never returned.
    dapr_api_token: Token | None = None

    def config_values(self) -> dict[str, str | None]:
        return {"base_url": str(self.base_url).rstrip("/"), "dapr_app_id": self.dapr_app_id}

    def secret_values(self) -> dict[str, str]:
        secrets = {"token": self.token, "dapr_api_token": self.dapr_api_token}
        return {name: value.get_secret_value() for name, value in secrets.items() if value}


class ClusterCreate(RequestSchema):
    name: Name
    description: Description | None = None
    provider: ClusterProviderKind
    # Super admins may register a cluster in another organization.
    organization_id: uuid.UUID | None = None
    # Required for `budcluster`; `local` takes none.
    connection: BudclusterConnection | None = None

    @model_validator(mode="after")
    def _connection_matches_provider(self) -> ClusterCreate:
        if self.provider is ClusterProviderKind.BUDCLUSTER and self.connection is None:
            raise ValueError("a budcluster cluster needs a connection (base_url, ...)")
        if self.provider is ClusterProviderKind.LOCAL and self.connection is not None:
            raise ValueError("the local provider takes no connection")
        return self


class DeviceRead(BaseModel):
    kind: str
    name: str
    count: int
    # Per device.
    memory_total_bytes: int | None
    memory_free_bytes: int | None


class NodeRead(BaseModel):
    name: str
    cpu_cores: int
    memory_total_bytes: int
    memory_free_bytes: int
    devices: list[DeviceRead]


class ConnectionRead(BaseModel):
    base_url: str
    dapr_app_id: str | None
    # Whether a token is stored; its value is never returned.
    token_set: bool
    dapr_api_token_set: bool


class ClusterCapacity(BaseModel):
    node_count: int
    cpu_cores: int
    memory_total_bytes: int
    memory_free_bytes: int
    gpu_count: int
    gpu_memory_total_bytes: int
    gpu_memory_free_bytes: int


class ClusterStatusRead(BaseModel):
    id: uuid.UUID
    name: str
    provider: ClusterProviderKind
    status: ClusterStatus
    last_synced_at: datetime | None
    last_error: str | None
    capacity: ClusterCapacity


class ClusterRead(RecordRead):
    organization_id: uuid.UUID
    name: str
    description: str | None
    provider: ClusterProviderKind
    status: ClusterStatus
    connection: ConnectionRead | None
    capacity: ClusterCapacity
    nodes: list[NodeRead]
    last_synced_at: datetime | None
    last_error: str | None


class ClusterFilter(PageParams):
    provider: ClusterProviderKind | None = None
    status: ClusterStatus | None = None
    # Part of the name, case-insensitive.
    name: str | None = Field(default=None, max_length=255)
    organization_id: uuid.UUID | None = None
