"""A run's results as people read them: side by side with other runs (with deltas), and
exported as JSON, CSV (one row per stage) or JSONL (one line per request)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson

from budapp.benchmarks.models import BenchmarkRequest, BenchmarkRun
from budapp.benchmarks.runner import from_row

# The figures compared and exported, as (name, path into a stage's metrics).
FIGURES: list[tuple[str, tuple[str, ...]]] = [
    ("request_throughput", ("request_throughput",)),
    ("output_token_throughput", ("output_token_throughput",)),
    ("total_token_throughput", ("total_token_throughput",)),
    ("peak_output_tokens_per_s", ("peak_output_tokens_per_s",)),
    ("goodput", ("goodput",)),
    ("error_rate", ("errors", "rate")),
    *[
        (f"{metric}_{stat}", (f"{metric}_ms", stat))
        for metric in ("ttft", "ttst", "tpot", "icl", "e2el")
        for stat in ("mean", "std", "p50", "p90", "p95", "p99", "p99_9")
    ],
]


def figure(metrics: dict[str, Any], path: tuple[str, ...]) -> float | None:
    node: Any = metrics
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return float(node) if isinstance(node, int | float) else None


def _headline_metrics(run: BenchmarkRun) -> dict[str, Any]:
    summary = (run.results or {}).get("summary") or {}
    return dict(summary.get("metrics") or {})


def compare(runs: list[BenchmarkRun]) -> dict[str, Any]:
    """Each run's headline figures, and their differences from the first run (absolute,
    and relative to the first's value)."""
    tables = [_headline_metrics(run) for run in runs]
    rows: list[dict[str, Any]] = []
    figures: list[dict[str, float | None]] = []
    for run, metrics in zip(runs, tables, strict=True):
        figures.append({name: figure(metrics, path) for name, path in FIGURES})
        rows.append(
            {
                "id": str(run.id),
                "name": run.name,
                "status": run.status.value,
                "partial": run.partial,
                "target_kind": run.target_kind.value,
                "model": run.model,
                "conditions": (run.config or {}).get("profile"),
                "figures": figures[-1],
            }
        )
    baseline = figures[0]
    deltas = []
    for row, values in zip(rows[1:], figures[1:], strict=True):
        delta: dict[str, Any] = {"id": row["id"], "against": rows[0]["id"], "figures": {}}
        for name, _ in FIGURES:
            base, value = baseline[name], values[name]
            if base is None or value is None:
                continue
            change = value - base
            relative = change / base if base else None
            delta["figures"][name] = {
                "delta": round(change, 4),
                "relative": None if relative is None else round(relative, 4),
            }
        deltas.append(delta)
    return {"runs": rows, "metrics": [name for name, _ in FIGURES], "deltas": deltas}


def as_json(run: BenchmarkRun, read: dict[str, Any]) -> bytes:
    return orjson.dumps({**read, "results": run.results}, option=orjson.OPT_INDENT_2)


def as_csv(run: BenchmarkRun) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    names = [name for name, _ in FIGURES]
    writer.writerow(
        ["stage", "label", "mode", "concurrency", "rate", "stop_reason", "partial",
         "succeeded", "failed", "duration_s", *names]
    )  # fmt: skip
    for stage in (run.results or {}).get("stages", []):
        described, metrics = stage["stage"], stage["metrics"]
        writer.writerow(
            [
                described.get("index"),
                described.get("label"),
                described.get("mode"),
                described.get("concurrency"),
                described.get("rate"),
                stage["stop_reason"],
                stage["partial"],
                metrics["requests"]["succeeded"],
                metrics["requests"]["failed"],
                metrics["duration_s"],
                *[_cell(figure(metrics, path)) for _, path in FIGURES],
            ]
        )
    return out.getvalue()


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


async def as_jsonl(pages: AsyncIterator[Iterable[BenchmarkRequest]]) -> AsyncIterator[bytes]:
    async for page in pages:
        yield b"".join(orjson.dumps(_record(row)) + b"\n" for row in page)


def _record(row: BenchmarkRequest) -> dict[str, Any]:
    record = from_row(row)
    return {
        "stage": record.stage,
        "sequence": record.sequence,
        "started_s": record.started_s,
        "status": record.status,
        "http_status": record.http_status,
        "error_kind": record.error_kind,
        "error": record.error,
        "ttft_ms": record.ttft_ms,
        "tpot_ms": record.tpot_ms,
        "e2el_ms": record.e2el_ms,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "usage_reported": record.usage_reported,
        "chunk_ms": record.chunk_ms,
        "chunk_tokens": record.chunk_tokens,
    }
