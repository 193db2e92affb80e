"""Resource planning: how much memory a model needs to serve (weights, KV cache, runtime
overhead), how many devices a replica takes, and where the replicas fit.

Pure functions over plain values, so that the plan a dry run shows is exactly the plan a
deployment uses. Where the model's shape is unknown (no config.json), the number of layers
and the hidden size are estimated from the parameter count, and the plan says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

GIB = 1024**3
MIB = 1024**2

# Bytes per weight for common precisions and quantization schemes (incl. scales/zeros).
_BYTES_PER_PARAMETER: dict[str, float] = {
    "fp32": 4.0,
    "float32": 4.0,
    "fp16": 2.0,
    "float16": 2.0,
    "bf16": 2.0,
    "bfloat16": 2.0,
    "fp8": 1.0,
    "float8": 1.0,
    "int8": 1.0,
    "q8_0": 1.0625,
    "q6_k": 0.8203,
    "q5_k_m": 0.6875,
    "q5_0": 0.6875,
    "q4_k_m": 0.6055,
    "q4_0": 0.5625,
    "q3_k_m": 0.4883,
    "q2_k": 0.3281,
    "int4": 0.5625,
    "awq": 0.5625,
    "gptq": 0.5625,
    "nf4": 0.5625,
}
DEFAULT_PRECISION = "bf16"

# (parameters up to, layers, hidden size) of common dense decoder sizes, for models whose
# config is unknown.
_TYPICAL_SHAPES: list[tuple[float, int, int]] = [
    (0.6e9, 24, 1024),
    (1.5e9, 28, 1536),
    (3.5e9, 32, 2560),
    (8.5e9, 32, 4096),
    (15e9, 40, 5120),
    (35e9, 60, 6656),
    (75e9, 80, 8192),
    (float("inf"), 126, 16384),
]

RuntimeKind = Literal["gpu", "cpu", "any", "none"]


@dataclass(frozen=True, slots=True)
class ModelShape:
    parameter_count: int
    precision: str | None = None
    layers: int | None = None
    hidden_size: int | None = None
    attention_heads: int | None = None
    kv_heads: int | None = None
    max_context_length: int | None = None


@dataclass(frozen=True, slots=True)
class Workload:
    context_length: int
    # Sequences served at once per replica, each up to context_length tokens.
    concurrency: int = 1
    # Bytes per KV-cache element: 2 for fp16/bf16, 1 for an fp8 KV cache.
    kv_cache_bytes: int = 2


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    assumptions: tuple[str, ...]

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes


def bytes_per_parameter(precision: str | None) -> tuple[float, str | None]:
    """The bytes one weight takes, and an assumption to report when the precision is
    unknown or unrecognised."""
    if precision:
        key = precision.strip().lower().replace("-", "_")
        if key in _BYTES_PER_PARAMETER:
            return _BYTES_PER_PARAMETER[key], None
        # The longest known name inside it: "awq-int4" is AWQ, "q4_k_m-gguf" is Q4_K_M.
        for name in sorted(_BYTES_PER_PARAMETER, key=len, reverse=True):
            if name in key:
                return _BYTES_PER_PARAMETER[name], None
        return _BYTES_PER_PARAMETER[DEFAULT_PRECISION], (
            f"precision {precision!r} is not recognised; assumed {DEFAULT_PRECISION}"
        )
    return _BYTES_PER_PARAMETER[
        DEFAULT_PRECISION
    ], f"precision unknown; assumed {DEFAULT_PRECISION}"


def estimate_memory(
    model: ModelShape, workload: Workload, *, runtime_overhead_bytes: int = GIB
) -> MemoryEstimate:
    """Memory one replica needs: weights + KV cache for `concurrency` sequences of
    `context_length` tokens + the runtime's own (CUDA context, activations, buffers)."""
    assumptions: list[str] = []
    per_parameter, note = bytes_per_parameter(model.precision)
    if note:
        assumptions.append(note)
    weights = math.ceil(model.parameter_count * per_parameter)

    layers, hidden = model.layers, model.hidden_size
    if layers is None or hidden is None:
        typical_layers, typical_hidden = next(
            (shape[1], shape[2]) for shape in _TYPICAL_SHAPES if model.parameter_count <= shape[0]
        )
        layers, hidden = layers or typical_layers, hidden or typical_hidden
        assumptions.append(f"model shape unknown; assumed {layers} layers, hidden size {hidden}")
    heads = model.attention_heads or max(1, hidden // 128)
    kv_heads = model.kv_heads or heads
    head_dim = hidden // heads
    per_token = 2 * layers * kv_heads * head_dim * workload.kv_cache_bytes
    kv_cache = per_token * workload.context_length * workload.concurrency
    # Activations and allocator slack grow with the weights; the fixed part is the runtime's.
    overhead = runtime_overhead_bytes + math.ceil(weights * 0.05)
    return MemoryEstimate(weights, kv_cache, overhead, tuple(assumptions))


# --- placement ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceSlot:
    index: int
    name: str
    memory_free_bytes: int


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    name: str
    gpus: tuple[DeviceSlot, ...]
    memory_free_bytes: int
    cpu_cores: int


@dataclass(frozen=True, slots=True)
class ClusterCapacity:
    id: str
    name: str
    available: bool
    nodes: tuple[NodeCapacity, ...]


@dataclass(frozen=True, slots=True)
class ReplicaPlacement:
    cluster_id: str
    node: str
    device_kind: Literal["gpu", "cpu"]
    # GPU indices on the node; empty on CPU.
    devices: tuple[int, ...]
    memory_bytes: int


@dataclass
class PlacementResult:
    replicas: list[ReplicaPlacement] = field(default_factory=list)
    # Why each cluster that was considered could not take (all) the replicas.
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        return bool(self.replicas)


# Tensor parallel sizes a runtime can shard one replica over, within one node.
_PARALLEL_SIZES = (1, 2, 4, 8)
# Leave this share of each GPU free (the runtime's own headroom, fragmentation).
GPU_UTILIZATION = 0.9


def place(
    clusters: list[ClusterCapacity],
    *,
    replicas: int,
    needed_bytes: int,
    device: RuntimeKind,
    cpu_cores: int = 1,
) -> PlacementResult:
    """Places every replica on one cluster, the first (in the given order) that takes them
    all. A GPU replica takes the fewest GPUs of one node whose free memory, split evenly,
    holds it; a CPU replica takes node memory and cores. `device="none"` (a runtime that
    loads no weights, such as the simulator) needs only the cores and its own memory."""
    result = PlacementResult()
    for cluster in clusters:
        if not cluster.available:
            result.reasons[cluster.name] = "the cluster is not available"
            continue
        placed, reason = _place_on_cluster(cluster, replicas, needed_bytes, device, cpu_cores)
        if placed is not None:
            result.replicas = placed
            return result
        result.reasons[cluster.name] = reason
    return result


def _place_on_cluster(
    cluster: ClusterCapacity, replicas: int, needed: int, device: RuntimeKind, cpu_cores: int
) -> tuple[list[ReplicaPlacement] | None, str]:
    free_gpus = {node.name: list(node.gpus) for node in cluster.nodes}
    free_memory = {node.name: node.memory_free_bytes for node in cluster.nodes}
    free_cores = {node.name: node.cpu_cores for node in cluster.nodes}
    placed: list[ReplicaPlacement] = []
    for _ in range(replicas):
        placement = None
        if device in ("gpu", "any"):
            placement = _take_gpus(cluster, free_gpus, needed)
        if placement is None and device in ("cpu", "any", "none"):
            placement = _take_cpu(cluster, free_memory, free_cores, needed, cpu_cores)
        if placement is None:
            return None, _shortfall(cluster, placed, replicas, needed, device)
        placed.append(placement)
    return placed, ""


def _take_gpus(
    cluster: ClusterCapacity, free: dict[str, list[DeviceSlot]], needed: int
) -> ReplicaPlacement | None:
    for size in _PARALLEL_SIZES:
        share = math.ceil(needed / size)
        for node in cluster.nodes:
            usable = [
                gpu for gpu in free[node.name] if gpu.memory_free_bytes * GPU_UTILIZATION >= share
            ]
            if len(usable) >= size:
                chosen = sorted(usable, key=lambda gpu: gpu.memory_free_bytes)[:size]
                taken = {gpu.index for gpu in chosen}
                free[node.name] = [gpu for gpu in free[node.name] if gpu.index not in taken]
                return ReplicaPlacement(cluster.id, node.name, "gpu", tuple(sorted(taken)), needed)
    return None


def _take_cpu(
    cluster: ClusterCapacity,
    memory: dict[str, int],
    cores: dict[str, int],
    needed: int,
    cpu_cores: int,
) -> ReplicaPlacement | None:
    for node in cluster.nodes:
        if memory[node.name] >= needed and cores[node.name] >= cpu_cores:
            memory[node.name] -= needed
            cores[node.name] -= cpu_cores
            return ReplicaPlacement(cluster.id, node.name, "cpu", (), needed)
    return None


def _shortfall(
    cluster: ClusterCapacity,
    placed: list[ReplicaPlacement],
    replicas: int,
    needed: int,
    device: RuntimeKind,
) -> str:
    have = f"{len(placed)} of {replicas} replicas fit" if placed else "no replica fits"
    need = f"{needed / GIB:.1f} GiB per replica"
    if device == "gpu":
        gpus = [gpu for node in cluster.nodes for gpu in node.gpus]
        if not gpus:
            return f"{have}: the runtime needs GPUs and the cluster has none"
        largest = max(node_total(node) for node in cluster.nodes) / GIB
        return (
            f"{have}: {need} on GPUs; the most free GPU memory on one node is "
            f"{largest:.1f} GiB (at {GPU_UTILIZATION:.0%} utilisation)"
        )
    most = max((node.memory_free_bytes for node in cluster.nodes), default=0) / GIB
    return f"{have}: {need}; the most free memory on one node is {most:.1f} GiB"


def node_total(node: NodeCapacity) -> float:
    return sum(gpu.memory_free_bytes for gpu in node.gpus) * GPU_UTILIZATION
