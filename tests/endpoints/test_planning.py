"""Memory estimates against known model sizes, and placement on clusters."""

from __future__ import annotations

import pytest

from budapp.endpoints.planning import (
    GIB,
    ClusterCapacity,
    DeviceSlot,
    ModelShape,
    NodeCapacity,
    Workload,
    bytes_per_parameter,
    estimate_memory,
    place,
)

# Llama-3-8B: 32 layers, hidden 4096, 32 heads, 8 KV heads (GQA).
LLAMA_8B = ModelShape(
    parameter_count=8_030_261_248,
    precision="bfloat16",
    layers=32,
    hidden_size=4096,
    attention_heads=32,
    kv_heads=8,
)


def test_llama_8b_weights_and_kv_cache() -> None:
    estimate = estimate_memory(LLAMA_8B, Workload(context_length=8192, concurrency=4))
    assert estimate.weights_bytes == 2 * 8_030_261_248  # ~15 GiB in bf16
    # 2 (K,V) x 32 layers x 8 kv heads x 128 dims x 2 bytes = 128 KiB per token.
    assert estimate.kv_cache_bytes == 131072 * 8192 * 4  # 4 GiB
    assert estimate.assumptions == ()
    assert 20 * GIB < estimate.total_bytes < 22 * GIB


@pytest.mark.parametrize(
    ("precision", "expected"),
    [("fp16", 2.0), ("Q4_K_M", 0.6055), ("awq-int4", 0.5625), ("int8", 1.0), ("fp32", 4.0)],
)
def test_precisions(precision: str, expected: float) -> None:
    assert bytes_per_parameter(precision) == (expected, None)


def test_unknown_shape_and_precision_are_estimated_and_said() -> None:
    estimate = estimate_memory(ModelShape(parameter_count=7_000_000_000), Workload(4096))
    assert len(estimate.assumptions) == 2
    assert "assumed bf16" in estimate.assumptions[0]
    assert "32 layers" in estimate.assumptions[1]
    assert estimate.kv_cache_bytes == 2 * 32 * 32 * 128 * 2 * 4096  # no GQA assumed


def _node(name: str, gpus: list[float], memory_gib: float = 256, cores: int = 32) -> NodeCapacity:
    return NodeCapacity(
        name,
        tuple(DeviceSlot(i, "H100", int(free * GIB)) for i, free in enumerate(gpus)),
        int(memory_gib * GIB),
        cores,
    )


def test_a_replica_takes_the_fewest_gpus_that_hold_it() -> None:
    cluster = ClusterCapacity("c1", "gpu-pool", True, (_node("n1", [80, 80, 80, 80]),))
    result = place([cluster], replicas=1, needed_bytes=100 * GIB, device="gpu")
    assert result.fits
    assert result.replicas[0].devices == (0, 1)  # 50 GiB each fits in 72 usable
    two = place([cluster], replicas=2, needed_bytes=100 * GIB, device="gpu")
    assert [r.devices for r in two.replicas] == [(0, 1), (2, 3)]


def test_no_fit_explains_why_per_cluster() -> None:
    small = ClusterCapacity("c1", "small", True, (_node("n1", [24]),))
    cpu_only = ClusterCapacity("c2", "cpus", True, (_node("n2", []),))
    down = ClusterCapacity("c3", "down", False, (_node("n3", [80] * 8),))
    result = place([small, cpu_only, down], replicas=1, needed_bytes=40 * GIB, device="gpu")
    assert not result.fits
    assert "21.6 GiB" in result.reasons["small"]
    assert "has none" in result.reasons["cpus"]
    assert result.reasons["down"] == "the cluster is not available"


def test_replicas_that_do_not_all_fit_are_not_placed_partially() -> None:
    cluster = ClusterCapacity("c1", "one-gpu", True, (_node("n1", [80]),))
    result = place([cluster], replicas=2, needed_bytes=30 * GIB, device="gpu")
    assert not result.fits
    assert result.reasons["one-gpu"].startswith("1 of 2 replicas fit")


def test_cpu_runtimes_use_node_memory_and_cores() -> None:
    cluster = ClusterCapacity("c1", "laptop", True, (_node("n1", [], memory_gib=16, cores=2),))
    assert place([cluster], replicas=2, needed_bytes=GIB, device="cpu", cpu_cores=1).fits
    result = place([cluster], replicas=3, needed_bytes=GIB, device="cpu", cpu_cores=1)
    assert not result.fits
    # "any" prefers GPUs and falls back to CPU.
    mixed = ClusterCapacity("c2", "mixed", True, (_node("n1", [8], memory_gib=64),))
    placed = place([mixed], replicas=2, needed_bytes=6 * GIB, device="any")
    assert [r.device_kind for r in placed.replicas] == ["gpu", "cpu"]


# Hand-computed: Llama-2-7B (6.74e9 parameters, 32 layers, hidden 4096, 32 KV heads) and
# Llama-2-70B (68.98e9, 80 layers, hidden 8192, 64 heads, 8 KV heads), 4096 tokens, 1 sequence.
LLAMA2_7B = {
    "parameter_count": 6_738_415_616,
    "layers": 32,
    "hidden_size": 4096,
    "attention_heads": 32,
    "kv_heads": 32,
}
LLAMA2_70B = {
    "parameter_count": 68_976_648_192,
    "layers": 80,
    "hidden_size": 8192,
    "attention_heads": 64,
    "kv_heads": 8,
}


@pytest.mark.parametrize(
    ("shape", "precision", "weights", "kv_cache"),
    [
        # 7B fp16: 13.48e9 bytes of weights; KV 2*32*32*128*2 = 512 KiB per token -> 2 GiB.
        (LLAMA2_7B, "fp16", 13_476_831_232, 2 * 32 * 32 * 128 * 2 * 4096),
        # 7B int4 (with group scales, 0.5625 B/param): 3.79e9 bytes.
        (LLAMA2_7B, "int4", 3_790_358_784, 2 * 32 * 32 * 128 * 2 * 4096),
        # 70B fp16: 137.95e9 bytes; GQA: 2*80*8*128*2 = 320 KiB per token -> 1.25 GiB.
        (LLAMA2_70B, "fp16", 137_953_296_384, 2 * 80 * 8 * 128 * 2 * 4096),
        (LLAMA2_70B, "int4", 38_799_364_608, 2 * 80 * 8 * 128 * 2 * 4096),
    ],
)
def test_known_models(shape: dict[str, int], precision: str, weights: int, kv_cache: int) -> None:
    estimate = estimate_memory(ModelShape(precision=precision, **shape), Workload(4096))
    assert estimate.weights_bytes == weights
    assert estimate.kv_cache_bytes == kv_cache
    assert estimate.overhead_bytes == GIB + -(-weights * 5 // 100)


def test_70b_fp16_needs_two_h100s_and_int4_one() -> None:
    node = _node("n1", [80] * 8)
    cluster = ClusterCapacity("c1", "h100", True, (node,))
    fp16 = estimate_memory(ModelShape(precision="fp16", **LLAMA2_70B), Workload(4096, 8))
    int4 = estimate_memory(ModelShape(precision="int4", **LLAMA2_70B), Workload(4096, 8))
    assert (
        len(
            place([cluster], replicas=1, needed_bytes=fp16.total_bytes, device="gpu")
            .replicas[0]
            .devices
        )
        == 4
    )  # ~156 GiB: 4 x 39 GiB fits in 72 usable each, 2 do not
    assert (
        len(
            place([cluster], replicas=1, needed_bytes=int4.total_bytes, device="gpu")
            .replicas[0]
            .devices
        )
        == 1
    )
