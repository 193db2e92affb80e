"""A run's summary, and what it reports to the leaderboard (the catalogue's
`model_evaluations`, shared with evaluations): per stage of a fixed load, the median TTFT and
TPOT and the throughputs, under conditions that say exactly what load and token lengths they
were measured with, so that only like is ranked with like."""

from __future__ import annotations

import uuid
from typing import Any

from budapp.benchmarks.config import BenchmarkConfig, CapacityProfile, SweepProfile
from budapp.benchmarks.metrics import holds
from budapp.benchmarks.models import BenchmarkRun, TargetKind
from budapp.catalog.schemas import ModelResult

# metric name -> (where in a stage's metrics, higher is better)
BOARD_METRICS: dict[str, tuple[tuple[str, ...], bool]] = {
    "ttft_p50_ms": (("ttft_ms", "p50"), False),
    "tpot_p50_ms": (("tpot_ms", "p50"), False),
    "e2el_p50_ms": (("e2el_ms", "p50"), False),
    "request_throughput": (("request_throughput",), True),
    "output_token_throughput": (("output_token_throughput",), True),
}


def headline(config: BenchmarkConfig, stages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The stage a run is summed up by: a sweep's maximum-throughput stage, a capacity
    search's highest load that held, else the run's one stage."""
    if not stages:
        return None
    profile = config.profile
    if isinstance(profile, SweepProfile) and len(stages) > 1:
        return stages[1]
    if isinstance(profile, CapacityProfile):
        passing = [
            stage
            for stage in stages
            if holds(stage["metrics"], profile.attainment, config.bounds.max_error_rate)
        ]
        return passing[-1] if passing else stages[0]
    return stages[0]


def summarize(config: BenchmarkConfig, stages: list[dict[str, Any]]) -> dict[str, Any]:
    best = headline(config, stages)
    sources = {stage["metrics"]["tokens"]["source"] for stage in stages}
    source = sources.pop() if len(sources) == 1 else "mixed"
    summary: dict[str, Any] = {
        "stages": len(stages),
        "headline_stage": best["stage"].get("index") if best else None,
        "token_source": source,
        # Counted by the fallback tokenizer for some request: figures are estimates.
        "token_counts_estimated": source in ("tokenizer", "mixed"),
        "partial": any(stage["partial"] for stage in stages),
    }
    if best is not None:
        summary["metrics"] = {k: v for k, v in best["metrics"].items() if k != "series"}
    return summary


def _value(metrics: dict[str, Any], path: tuple[str, ...]) -> float | None:
    node: Any = metrics
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return float(node) if isinstance(node, int | float) else None


def _load(stage: dict[str, Any]) -> str | None:
    """The load of a stage as a comparable condition; None for a sweep's derived rates."""
    if stage["mode"] == "closed":
        return f"concurrency={stage['concurrency']}"
    if stage.get("label", "").startswith("rate ") and stage["index"] == 0:
        return f"rate={stage['rate']:g} {stage['arrivals']}"
    return None


def leaderboard_results(run: BenchmarkRun) -> list[ModelResult]:
    """Only complete runs of an endpoint report results: a router mixes targets, and a URL's
    model is not one of the registry's."""
    model = (run.snapshot or {}).get("model") or {}
    if run.partial or run.target_kind is not TargetKind.ENDPOINT or not model.get("id"):
        return []
    config = BenchmarkConfig.model_validate(run.config)
    results = []
    for stage in (run.results or {}).get("stages", []):
        load = _load(stage["stage"])
        if load is None or stage["partial"]:
            continue
        conditions = f"{config.conditions()} {load}"
        for metric, (path, higher) in BOARD_METRICS.items():
            value = _value(stage["metrics"], path)
            if value is not None:
                results.append(_result(run, model, metric, value, higher, conditions))
    found = (run.results or {}).get("capacity") or {}
    if found.get("capacity") is not None:
        slos = " ".join(f"{k}<={v:g}" for k, v in sorted(found["slos"].items()))
        conditions = f"{config.conditions()} slo {slos} attainment={found['attainment']:g}"
        metric = f"capacity_{found['search']}"
        results.append(_result(run, model, metric, float(found["capacity"]), True, conditions))
    return results


def _result(  # noqa: PLR0917 - one result's fields, said once
    run: BenchmarkRun,
    model: dict[str, Any],
    metric: str,
    value: float,
    higher: bool,
    conditions: str,
) -> ModelResult:
    snapshot = run.snapshot or {}
    return ModelResult(
        organization_id=run.organization_id,
        model_id=uuid.UUID(model["id"]),
        kind="benchmark",
        name=run.name,
        metric=metric,
        value=value,
        higher_is_better=higher,
        conditions=conditions,
        source_id=run.id,
        endpoint_id=run.endpoint_id,
        endpoint_name=(snapshot.get("endpoint") or {}).get("name"),
        runtime=snapshot.get("runtime"),
        device=snapshot.get("device"),
        details={"benchmark_id": str(run.id)},
    )
