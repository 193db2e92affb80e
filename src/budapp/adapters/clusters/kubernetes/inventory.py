"""A cluster's nodes as budapp's inventory: allocatable CPU and memory, GPUs by extended
resource name (`nvidia.com/gpu`, MIG profiles such as `nvidia.com/mig-1g.10gb`, `amd.com/gpu`,
`gpu.intel.com/i915`), their product and memory from the labels NVIDIA GPU feature discovery
and AMD's node labeller put on nodes, and taints.

What is free is what is allocatable less the requests of the pods bound to the node. A node
that is not Ready, is cordoned, or has a taint budapp's pods do not tolerate offers nothing."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from lightkube.utils.quantity import parse_quantity

from budapp.adapters.clusters.base import Device, Inventory, Node
from budapp.adapters.clusters.kubernetes.manifests import Toleration

_MIG = re.compile(r"^nvidia\.com/mig-(?P<profile>\d+g\.(?P<gb>\d+)gb)$")
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915")
_MIB = 2**20
_GIB = 2**30


def quantity(value: object) -> Decimal:
    """A Kubernetes resource quantity ("3800m", "64Gi", "1e3") as a number; 0 when unreadable
    (one odd node must not fail the whole inventory)."""
    try:
        return parse_quantity(str(value).strip()) or Decimal(0)
    except ValueError:
        return Decimal(0)


def is_gpu_resource(name: str) -> bool:
    return name in GPU_RESOURCES or _MIG.match(name) is not None


def build_inventory(
    nodes: Iterable[dict[str, Any]],
    pods: Iterable[dict[str, Any]] | None,
    tolerations: Iterable[Toleration] = (),
) -> Inventory:
    requested: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for pod in pods or ():
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for container in (pod.get("spec") or {}).get("containers") or []:
            for name, value in ((container.get("resources") or {}).get("requests") or {}).items():
                requested[node][name] += quantity(value)
    usable = list(tolerations)
    return Inventory(nodes=[_node(node, requested[_name(node)], usable) for node in nodes])


def _name(node: dict[str, Any]) -> str:
    return str((node.get("metadata") or {}).get("name", ""))


def _node(node: dict[str, Any], used: dict[str, Decimal], tolerations: list[Toleration]) -> Node:
    metadata, spec, status = (
        node.get("metadata") or {},
        node.get("spec") or {},
        node.get("status") or {},
    )
    labels: dict[str, str] = metadata.get("labels") or {}
    allocatable: dict[str, Any] = status.get("allocatable") or {}
    taints = [
        f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"
        for t in spec.get("taints") or []
    ]
    offers = _ready(status) and not spec.get("unschedulable")
    cpu = quantity(allocatable.get("cpu", 0))
    memory = int(quantity(allocatable.get("memory", 0)))
    free_cpu = max(Decimal(0), cpu - used.get("cpu", Decimal(0)))
    free_memory = max(0, memory - int(used.get("memory", Decimal(0))))
    devices = [
        Device(
            kind="cpu",
            name=labels.get("kubernetes.io/arch", "cpu"),
            count=int(cpu),
            memory_total_bytes=memory,
            memory_free_bytes=free_memory if offers else 0,
        )
    ]
    for resource, value in sorted(allocatable.items()):
        if not is_gpu_resource(resource):
            continue
        total = int(quantity(value))
        free = max(0, total - int(used.get(resource, Decimal(0))))
        blocked = not offers or _untolerated(spec.get("taints") or [], tolerations, resource)
        if total == 0:
            continue
        memory_each = _gpu_memory(resource, labels)
        devices.append(
            Device(
                kind="gpu",
                name=f"{_gpu_product(resource, labels)} ({resource})",
                resource=resource,
                count=0 if blocked else free,
                memory_total_bytes=memory_each,
                memory_free_bytes=memory_each,
            )
        )
    return Node(
        name=_name(node),
        cpu_cores=math.floor(free_cpu) if offers else 0,
        memory_total_bytes=memory,
        memory_free_bytes=free_memory if offers else 0,
        devices=devices,
        taints=taints,
    )


def _ready(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _untolerated(
    taints: list[dict[str, Any]], tolerations: list[Toleration], gpu_resource: str
) -> bool:
    """Whether a taint keeps budapp's GPU pods off the node (they tolerate their resource's)."""
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if taint.get("key") == gpu_resource:
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            return True
    return False


def _tolerates(toleration: Toleration, taint: dict[str, Any]) -> bool:
    if toleration.effect and toleration.effect != taint.get("effect"):
        return False
    if toleration.key is None:
        return toleration.operator == "Exists"
    if toleration.key != taint.get("key"):
        return False
    return toleration.operator == "Exists" or toleration.value == taint.get("value")


def _gpu_product(resource: str, labels: dict[str, str]) -> str:
    if mig := _MIG.match(resource):
        base = labels.get("nvidia.com/gpu.product", "NVIDIA GPU")
        return f"{base} MIG {mig.group('profile')}"
    if resource.startswith("amd.com/"):
        return labels.get("amd.com/gpu.product-name") or labels.get(
            "beta.amd.com/gpu.product-name", "AMD GPU"
        )
    if resource.startswith("gpu.intel.com/"):
        return labels.get("gpu.intel.com/product", "Intel GPU")
    return labels.get("nvidia.com/gpu.product", "NVIDIA GPU")


def _gpu_memory(resource: str, labels: dict[str, str]) -> int | None:
    """Bytes per device: GFD's `nvidia.com/gpu.memory` is in MiB, AMD's vram label a quantity
    such as `64G`; a MIG slice's size is in its profile name."""
    if mig := _MIG.match(resource):
        label = labels.get(f"{resource}.memory")
        return int(label) * _MIB if label and label.isdigit() else int(mig.group("gb")) * _GIB
    if resource.startswith("amd.com/"):
        vram = labels.get("amd.com/gpu.vram") or labels.get("beta.amd.com/gpu.vram")
        return _vram(vram) if vram else None
    if resource == "nvidia.com/gpu":
        label = labels.get("nvidia.com/gpu.memory")
        return int(label) * _MIB if label and label.isdigit() else None
    return None


def _vram(value: str) -> int | None:
    # The AMD labeller writes `64G` meaning GiB.
    match = re.match(r"^(\d+)([GM])i?$", value)
    if not match:
        return None
    return int(match.group(1)) * (_GIB if match.group(2) == "G" else _MIB)
