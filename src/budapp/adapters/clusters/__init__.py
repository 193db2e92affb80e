"""Cluster providers: `local` (this host, runtimes as supervised processes) and `budcluster`
(a remote cluster service over HTTP or Dapr). The clusters domain asks the connector for the
provider of a cluster row and never imports a backend itself."""

from __future__ import annotations

from typing import Any

from budapp.adapters.clusters.base import (
    ClusterProvider,
    ClusterUnreachable,
    Device,
    Inventory,
    Node,
    ProviderError,
    RuntimeSpec,
    RuntimeState,
    RuntimeStatus,
    UnknownRuntime,
)
from budapp.adapters.clusters.budcluster import BudclusterProvider
from budapp.adapters.clusters.local import LocalProvider


class ClusterConnector:
    def __init__(self, local: LocalProvider | None, *, timeout: float = 10.0) -> None:
        self.local = local
        self.timeout = timeout

    def connect(
        self, provider: str, config: dict[str, Any], secrets: dict[str, str]
    ) -> ClusterProvider:
        if provider == "local":
            if self.local is None:
                raise ProviderError("the local provider is disabled on this budapp")
            return self.local
        if provider == "budcluster":
            return BudclusterProvider(
                str(config["base_url"]),
                dapr_app_id=config.get("dapr_app_id"),
                token=secrets.get("token"),
                dapr_api_token=secrets.get("dapr_api_token"),
                timeout=self.timeout,
            )
        raise ProviderError(f"unknown cluster provider {provider!r}")


__all__ = [
    "ClusterConnector",
    "ClusterProvider",
    "ClusterUnreachable",
    "Device",
    "Inventory",
    "Node",
    "ProviderError",
    "RuntimeSpec",
    "RuntimeState",
    "RuntimeStatus",
    "UnknownRuntime",
]
