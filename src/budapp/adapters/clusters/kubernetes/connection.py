"""How budapp reaches a Kubernetes API server: a kubeconfig from the credentials vault, or the
service account of the pod budapp runs in.

A kubeconfig is data someone uploaded, so only its inline parts are used: a user that runs a
command (`exec`, `auth-provider`) or a path on disk (`tokenFile`, `client-certificate`,
`certificate-authority`) would run programs or read files on budapp's host, and is refused."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import yaml
from cryptography import x509
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.core.exceptions import ConfigError

from budapp.adapters.clusters.base import ProviderError

# Fields of a kubeconfig that would make budapp run a program or read a local file.
_USER_FORBIDDEN = ("exec", "auth-provider", "tokenFile", "client-certificate", "client-key")
_CLUSTER_FORBIDDEN = ("certificate-authority",)


class KubeconfigError(ProviderError):
    """The kubeconfig cannot be used: unreadable, incomplete, unsafe, or expired."""


@dataclass(frozen=True)
class Connection:
    config: SingleConfig
    # Named in errors; never includes a credential.
    where: str


def from_kubeconfig(text: str, *, context: str | None, now: datetime | None = None) -> Connection:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        raise KubeconfigError("the kubeconfig is not valid YAML") from None
    if not isinstance(document, dict):
        raise KubeconfigError("the kubeconfig is not a YAML mapping")
    _refuse_local_references(document)
    try:
        single = KubeConfig.from_dict(document).get(context)
    except (ConfigError, KeyError, TypeError, ValueError, msgspec.ValidationError) as exc:
        raise KubeconfigError(f"the kubeconfig cannot be used: {_reason(exc)}") from None
    if single is None:
        raise KubeconfigError(
            f"the kubeconfig has no context {context!r}"
            if context
            else "the kubeconfig names no current-context"
        )
    _refuse_expired(single, now or datetime.now(UTC))
    return Connection(single, f"the Kubernetes API at {single.cluster.server}")


def in_cluster() -> Connection:
    """The service account of the pod budapp runs in (its token is re-read as the kubelet
    rotates it)."""
    try:
        single = KubeConfig.from_service_account().get()
    except (ConfigError, KeyError, OSError) as exc:
        raise KubeconfigError(
            f"budapp is not running inside a Kubernetes cluster ({_reason(exc)})"
        ) from None
    if single is None:  # from_service_account always has its one context
        raise KubeconfigError("the service account gave no configuration")
    return Connection(single, f"the Kubernetes API at {single.cluster.server} (in-cluster)")


def _refuse_local_references(document: dict[str, Any]) -> None:
    for entry in document.get("users") or []:
        user = entry.get("user") if isinstance(entry, dict) else None
        for field in _USER_FORBIDDEN:
            if isinstance(user, dict) and user.get(field):
                raise KubeconfigError(
                    f"the kubeconfig's user {entry.get('name')!r} uses {field!r}: budapp "
                    "accepts only inline credentials (token, client-certificate-data, "
                    "client-key-data)"
                )
    for entry in document.get("clusters") or []:
        cluster = entry.get("cluster") if isinstance(entry, dict) else None
        for field in _CLUSTER_FORBIDDEN:
            if isinstance(cluster, dict) and cluster.get(field):
                raise KubeconfigError(
                    f"the kubeconfig's cluster {entry.get('name')!r} uses {field!r}: use "
                    "certificate-authority-data instead"
                )


def _refuse_expired(single: SingleConfig, now: datetime) -> None:
    if single.user is None or single.user.client_cert_data is None:
        return
    try:
        pem = base64.b64decode(single.user.client_cert_data, validate=True)
        certificate = x509.load_pem_x509_certificate(pem)
    except (ValueError, binascii.Error):
        raise KubeconfigError("the kubeconfig's client certificate cannot be read") from None
    if certificate.not_valid_after_utc <= now:
        expired = certificate.not_valid_after_utc.isoformat()
        raise KubeconfigError(f"the kubeconfig's client certificate expired at {expired}")


def _reason(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def encode(data: bytes) -> str:
    """base64 as kubeconfigs write certificate data (for tests and docs)."""
    return base64.b64encode(data).decode()
