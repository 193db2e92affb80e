"""The objects budapp creates for one runtime, as plain manifests: a Deployment of one pod, a
Service in front of it, and a Secret for its environment; plus the namespace's model-cache
PVC, which outlives runtimes so that weights are downloaded once.

Pure functions of the spec, the template and the cluster's settings, so that tests validate
exactly what is sent against the Kubernetes OpenAPI schemas."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from budapp.adapters.clusters.base import RuntimeSpec
from budapp.adapters.clusters.catalog import RuntimeTemplate

MANAGED_BY = {"app.kubernetes.io/managed-by": "budapp"}
RUNTIME_LABEL = "budapp.io/runtime-id"
ENDPOINT_LABEL = "budapp.io/endpoint-id"
SPEC_HASH = "budapp.io/spec-hash"
CACHE_CLAIM = "budapp-model-cache"
CACHE_PATH = "/model-cache"
# Set by the device plugin inside the pod; the local provider's device pinning means nothing.
_LOCAL_ONLY_ENV = frozenset({"CUDA_VISIBLE_DEVICES"})
_PROBE_PERIOD = 10
Quantity = Annotated[
    str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$", max_length=32)
]


class Toleration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str | None = Field(default=None, max_length=253)
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = Field(default=None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class ClusterSettings(BaseModel):
    """A Kubernetes cluster registration's settings (the `config` of its row)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    namespace: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    # How the gateway reaches a runtime. Placeholders: {service}, {namespace}, {port},
    # {node_port}. The default is the Service's in-cluster DNS name.
    service_url: str = "http://{service}.{namespace}.svc:{port}"
    service_type: Literal["ClusterIP", "NodePort"] = "ClusterIP"
    # The model-cache PVC; None gives each pod an emptyDir (weights fetched on every start).
    model_cache_size: Quantity | None = None
    model_cache_storage_class: str | None = Field(default=None, max_length=253)
    model_cache_access_mode: Literal["ReadWriteMany", "ReadWriteOnce"] = "ReadWriteMany"
    runtime_class: str | None = Field(default=None, max_length=253)
    node_selector: dict[str, str] = Field(default_factory=dict, max_length=32)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    image_pull_secret: str | None = Field(default=None, max_length=253)
    # Host resources of each runtime container (GPU replicas); a CPU replica requests the
    # memory the planner gave it.
    cpu_request: Quantity = "2"
    memory_request: Quantity = "16Gi"
    # A container that crashes this often (CrashLoopBackOff, OOMKilled) fails the deploy.
    max_restarts: int = Field(default=3, ge=0, le=100)


def object_name(runtime_id: str) -> str:
    """A DNS-1123 label from a runtime id (Service names must be one)."""
    name = re.sub(r"[^a-z0-9-]+", "-", runtime_id.lower()).strip("-") or "runtime"
    if len(name) <= 63 and name == runtime_id:
        return name
    digest = hashlib.sha256(runtime_id.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-')}-{digest}"


def labels(spec: RuntimeSpec, template: RuntimeTemplate) -> dict[str, str]:
    values = {
        **MANAGED_BY,
        "app.kubernetes.io/name": template.name,
        "app.kubernetes.io/component": "model-runtime",
        RUNTIME_LABEL: object_name(spec.runtime_id),
    }
    if spec.endpoint_id:
        values[ENDPOINT_LABEL] = spec.endpoint_id
    return values


def runtime_objects(
    spec: RuntimeSpec,
    template: RuntimeTemplate,
    settings: ClusterSettings,
    *,
    gpu_resource: str | None,
    node_labels: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Secret (when the spec has environment), Service, then Deployment: the order they are
    created in, so that the pod finds both when it starts."""
    name = object_name(spec.runtime_id)
    tags = labels(spec, template)
    secret_env = {k: v for k, v in spec.env.items() if k not in _LOCAL_ONLY_ENV}
    objects: list[dict[str, Any]] = []
    if secret_env:
        secret: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _metadata(name + "-env", settings, tags),
            "type": "Opaque",
            "stringData": secret_env,
        }
        secret["metadata"]["annotations"] = {
            SPEC_HASH: hashlib.sha256(json.dumps(secret_env, sort_keys=True).encode()).hexdigest()[
                :16
            ]
        }
        objects.append(secret)
    front = service(name, template, settings, tags)
    front["metadata"]["annotations"] = {SPEC_HASH: spec_hash(front)}
    objects.append(front)
    objects.append(
        deployment(
            name,
            spec,
            template,
            settings,
            tags,
            gpu_resource=gpu_resource,
            node_labels=node_labels or {},
            env_secret=name + "-env" if secret_env else None,
        )
    )
    return objects


def service(
    name: str, template: RuntimeTemplate, settings: ClusterSettings, tags: dict[str, str]
) -> dict[str, Any]:
    port = template.container.port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, settings, tags),
        "spec": {
            "type": settings.service_type,
            "selector": {RUNTIME_LABEL: tags[RUNTIME_LABEL]},
            "ports": [
                {
                    "name": "http",
                    "port": port,
                    "targetPort": "http",
                    "protocol": "TCP",
                }
            ],
        },
    }


def deployment(
    name: str,
    spec: RuntimeSpec,
    template: RuntimeTemplate,
    settings: ClusterSettings,
    tags: dict[str, str],
    *,
    gpu_resource: str | None,
    node_labels: dict[str, str],
    env_secret: str | None,
) -> dict[str, Any]:
    k8s = template.container
    placement = spec.placement
    gpus = placement.device_count if placement and placement.device_kind == "gpu" else 0
    requests: dict[str, str] = {"cpu": settings.cpu_request, "memory": settings.memory_request}
    if placement and placement.device_kind == "cpu" and placement.memory_bytes:
        requests["memory"] = f"{math.ceil(placement.memory_bytes / 2**20)}Mi"
    limits: dict[str, str] = {"memory": requests["memory"]}
    if gpus and gpu_resource:
        requests[gpu_resource] = limits[gpu_resource] = str(gpus)
    startup_failures = max(1, math.ceil(template.startup_timeout / _PROBE_PERIOD))
    container: dict[str, Any] = {
        "name": "runtime",
        "image": k8s.image,
        "command": template.container_command(spec),
        "ports": [{"name": "http", "containerPort": k8s.port, "protocol": "TCP"}],
        "env": [
            *({"name": k, "value": v} for k, v in sorted(template.env.items())),
            {"name": "HF_HOME", "value": f"{CACHE_PATH}/huggingface"},
        ],
        "resources": {"requests": requests, "limits": limits},
        # /health may answer while weights still load: startup waits for it, long enough
        # for large weights, before liveness may restart the container; readiness asks for
        # the model list, which answers only once the model is loaded.
        "startupProbe": _probe(template.health_path, _PROBE_PERIOD, startup_failures),
        "readinessProbe": _probe(k8s.readiness_path, _PROBE_PERIOD, 3),
        "livenessProbe": _probe(template.health_path, 20, 3),
        "volumeMounts": [
            {"name": "shm", "mountPath": "/dev/shm"},  # noqa: S108 - the pod's own shared memory
            {"name": "model-cache", "mountPath": CACHE_PATH},
        ],
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    if env_secret:
        container["envFrom"] = [{"secretRef": {"name": env_secret}}]
    cache: dict[str, Any] = (
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": CACHE_CLAIM}}
        if settings.model_cache_size
        else {"name": "model-cache", "emptyDir": {}}
    )
    pod: dict[str, Any] = {
        "containers": [container],
        "volumes": [
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": k8s.shm_size}},
            cache,
        ],
        "terminationGracePeriodSeconds": 60,
        "enableServiceLinks": False,
    }
    _placement(pod, spec, settings, gpu_resource if gpus else None, node_labels)
    if settings.runtime_class:
        pod["runtimeClassName"] = settings.runtime_class
    if settings.image_pull_secret:
        pod["imagePullSecrets"] = [{"name": settings.image_pull_secret}]
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, settings, tags),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {RUNTIME_LABEL: tags[RUNTIME_LABEL]}},
            # A rolling update would hold twice the GPUs while the new pod loads.
            "strategy": {"type": "Recreate"},
            "progressDeadlineSeconds": int(template.startup_timeout + k8s.schedule_timeout_seconds),
            "template": {
                "metadata": {
                    "labels": tags,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(k8s.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod,
            },
        },
    }
    body["metadata"]["annotations"] = {SPEC_HASH: spec_hash(body), RUNTIME_LABEL: spec.runtime_id}
    return body


def _placement(
    pod: dict[str, Any],
    spec: RuntimeSpec,
    settings: ClusterSettings,
    gpu_resource: str | None,
    node_labels: dict[str, str],
) -> None:
    selector = dict(settings.node_selector)
    # A replacement pod stays on the GPU model the plan was made for.
    for label in ("nvidia.com/gpu.product", "amd.com/gpu.product-name"):
        if gpu_resource and label in node_labels:
            selector[label] = node_labels[label]
    if selector:
        pod["nodeSelector"] = selector
    node = spec.placement.node if spec.placement else None
    if node:
        term = {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
        pod["affinity"] = {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "preference": {"matchExpressions": [term]}}
                ]
            }
        }
    tolerations = [t.model_dump(exclude_none=True) for t in settings.tolerations]
    if gpu_resource:
        # GPU nodes are commonly tainted with their resource name.
        tolerations.append({"key": gpu_resource, "operator": "Exists", "effect": "NoSchedule"})
    if tolerations:
        pod["tolerations"] = tolerations


def model_cache_claim(settings: ClusterSettings) -> dict[str, Any] | None:
    if not settings.model_cache_size:
        return None
    spec: dict[str, Any] = {
        "accessModes": [settings.model_cache_access_mode],
        "resources": {"requests": {"storage": settings.model_cache_size}},
    }
    if settings.model_cache_storage_class:
        spec["storageClassName"] = settings.model_cache_storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(CACHE_CLAIM, settings, dict(MANAGED_BY)),
        "spec": spec,
    }


def spec_hash(body: dict[str, Any]) -> str:
    """Of what budapp asked for, so that a deploy of the same spec leaves the pod alone and a
    changed one replaces it."""
    return hashlib.sha256(json.dumps(body["spec"], sort_keys=True).encode()).hexdigest()[:16]


def _metadata(name: str, settings: ClusterSettings, tags: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": settings.namespace, "labels": dict(tags)}


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }
