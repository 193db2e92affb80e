from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    model_validator,
)

from budapp.adapters.clusters.kubernetes import ClusterSettings
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


_PLACEHOLDERS = ("{service}", "{namespace}", "{port}", "{node_port}")


class KubernetesConnection(ClusterSettings):
    """A Kubernetes cluster: how to reach its API (a `kubeconfig` credential of the same
    organization, or budapp's own service account when it runs in the cluster), the
    namespace budapp deploys into, and how runtimes are placed and reached."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    credential_id: uuid.UUID | None = None
    # budapp's own service account: only a super admin may register that.
    in_cluster: bool = False

    @model_validator(mode="after")
    def _one_way_in(self) -> KubernetesConnection:
        if (self.credential_id is None) == (not self.in_cluster):
            raise ValueError("give either credential_id (a kubeconfig credential) or in_cluster")
        url = self.service_url
        if not url.startswith(("http://", "https://")):
            raise ValueError("service_url must start with http:// or https://")
        rest = url
        for placeholder in _PLACEHOLDERS:
            rest = rest.replace(placeholder, "")
        if "{" in rest or "}" in rest:
            raise ValueError(
                f"service_url may only use the placeholders {', '.join(_PLACEHOLDERS)}"
            )
        if "{node_port}" in url and self.service_type != "NodePort":
            raise ValueError("service_url uses {node_port}: set service_type to NodePort")
        return self

    def config_values(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ClusterCreate(RequestSchema):
    name: Name
    description: Description | None = None
    provider: ClusterProviderKind
    # Super admins may register a cluster in another organization.
    organization_id: uuid.UUID | None = None
    # Required for `budcluster`; `local` takes none.
    connection: BudclusterConnection | None = None
    # Required for `kubernetes`.
    kubernetes: KubernetesConnection | None = None

    @model_validator(mode="after")
    def _connection_matches_provider(self) -> ClusterCreate:
        if (self.provider is ClusterProviderKind.KUBERNETES) != (self.kubernetes is not None):
            raise ValueError(
                "`kubernetes` settings are given for, and only for, a kubernetes cluster"
            )
        if self.provider is ClusterProviderKind.KUBERNETES and self.connection is not None:
            raise ValueError("a kubernetes cluster takes `kubernetes`, not `connection`")
        if self.provider is ClusterProviderKind.BUDCLUSTER and self.connection is None:
            raise ValueError("a budcluster cluster needs a connection (base_url, ...)")
        if self.provider is ClusterProviderKind.LOCAL and self.connection is not None:
            raise ValueError("the local provider takes no connection")
        return self


class DeviceRead(BaseModel):
    kind: str
    name: str
    resource: str | None = None
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
    taints: list[str] = []


class ConnectionRead(BaseModel):
    base_url: str
    dapr_app_id: str | None
    # Whether a token is stored; its value is never returned.
    token_set: bool
    dapr_api_token_set: bool


class KubernetesRead(BaseModel):
    credential_id: uuid.UUID | None
    in_cluster: bool
    namespace: str
    service_url: str
    service_type: str
    model_cache_size: str | None
    model_cache_storage_class: str | None
    runtime_class: str | None
    node_selector: dict[str, str]


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
    kubernetes: KubernetesRead | None = None
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
