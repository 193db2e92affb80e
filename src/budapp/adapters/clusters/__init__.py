"""Cluster providers: `local` (this host, runtimes as supervised processes), `budcluster`
(a remote cluster service over HTTP or Dapr) and `kubernetes` (Deployments and Services).
The clusters domain asks the connector for the provider of a cluster row and never imports a
backend itself."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from budapp.adapters.clusters.base import (
    ClusterProvider,
    ClusterUnreachable,
    Device,
    Inventory,
    Node,
    Placement,
    ProviderError,
    ReconcilingProvider,
    RuntimeSpec,
    RuntimeState,
    RuntimeStatus,
    UnknownRuntime,
)
from budapp.adapters.clusters.budcluster import BudclusterProvider
from budapp.adapters.clusters.catalog import SHIPPED, TemplateCatalog
from budapp.adapters.clusters.kubernetes import (
    ClusterSettings,
    KubernetesProvider,
    from_kubeconfig,
    in_cluster,
)
from budapp.adapters.clusters.local import LocalProvider


class ClusterConnector:
    def __init__(
        self,
        local: LocalProvider | None,
        *,
        timeout: float = 10.0,
        templates: TemplateCatalog | None = None,
        kubernetes_poll_seconds: float = 2.0,
    ) -> None:
        self.local = local
        self.timeout = timeout
        self.templates = templates or TemplateCatalog.load([SHIPPED])
        self.kubernetes_poll_seconds = kubernetes_poll_seconds

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
        if provider == "kubernetes":
            return self._kubernetes(config, secrets)
        raise ProviderError(f"unknown cluster provider {provider!r}")

    def _kubernetes(self, config: dict[str, Any], secrets: dict[str, str]) -> KubernetesProvider:
        """`secrets["kubeconfig"]` is the kubeconfig credential's YAML, opened from the vault by
        the clusters domain; without one, budapp's own service account (in-cluster)."""
        try:
            settings = ClusterSettings.model_validate(config)
        except ValidationError as exc:
            raise ProviderError(f"the cluster's Kubernetes settings are invalid: {exc}") from None
        if config.get("in_cluster"):
            connection = in_cluster()
        elif "kubeconfig" in secrets:
            connection = from_kubeconfig(secrets["kubeconfig"], context=secrets.get("context"))
        else:
            raise ProviderError("the cluster has neither a kubeconfig nor in_cluster set")
        return KubernetesProvider(
            connection,
            settings,
            self.templates,
            timeout=self.timeout,
            poll_seconds=self.kubernetes_poll_seconds,
        )


__all__ = [
    "ClusterConnector",
    "ClusterProvider",
    "ClusterUnreachable",
    "Device",
    "Inventory",
    "Node",
    "Placement",
    "ProviderError",
    "ReconcilingProvider",
    "RuntimeSpec",
    "RuntimeState",
    "RuntimeStatus",
    "UnknownRuntime",
]
