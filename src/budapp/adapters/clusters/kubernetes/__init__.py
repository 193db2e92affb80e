"""The `kubernetes` cluster provider: runtimes as Deployments and Services (lightkube)."""

from __future__ import annotations

from budapp.adapters.clusters.kubernetes.connection import (
    Connection,
    KubeconfigError,
    from_kubeconfig,
    in_cluster,
)
from budapp.adapters.clusters.kubernetes.manifests import ClusterSettings
from budapp.adapters.clusters.kubernetes.provider import KubernetesProvider

__all__ = [
    "ClusterSettings",
    "Connection",
    "KubeconfigError",
    "KubernetesProvider",
    "from_kubeconfig",
    "in_cluster",
]
