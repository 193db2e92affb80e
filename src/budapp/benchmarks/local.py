"""`budapp bench run`: a benchmark from the command line against any OpenAI-compatible URL,
with no budapp server: the same load generator, plans and metrics as a stored run, results
written as the API exports them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from budapp.benchmarks import charts
from budapp.benchmarks.config import BenchmarkConfig
from budapp.benchmarks.leaderboard import summarize
from budapp.benchmarks.loadgen import LoadGenerator, RequestRecord, Target
from budapp.benchmarks.plans import capacity, next_stage
from budapp.benchmarks.prompts import PromptSource, usable_rows
from budapp.benchmarks.runner import stage_result, to_row


def read_prompts(path: Path, column: str) -> list[Any]:
    """A local JSONL, CSV or Parquet file's column (a downloaded dataset)."""
    from budapp.datasets.columns import _values  # noqa: PLC0415 - the same reader as the server
    from budapp.datasets.models import DatasetFormat  # noqa: PLC0415

    suffix = path.suffix.lower().lstrip(".")
    fmt = DatasetFormat("jsonl" if suffix in ("jsonl", "ndjson") else suffix)
    rows = usable_rows(_values(path, fmt, column, 100_000))
    if not rows:
        raise ValueError(f"{path}: column {column!r} holds no prompt")
    return rows


async def run_local(
    *,
    url: str,
    model: str,
    api_key_env: str | None,
    config: BenchmarkConfig,
    rows: list[Any] | None,
    on_progress: Callable[[dict[str, Any] | None, int], None],
    requests_file: Path | None,
) -> dict[str, Any]:
    key = os.environ.get(api_key_env) if api_key_env else None
    target = Target((url.rstrip("/"),), model, key)
    generator = LoadGenerator(target, config, PromptSource(config, rows))
    stages: list[dict[str, Any]] = []
    records_out = requests_file.open("wb") if requests_file else None
    try:

        def record(item: RequestRecord) -> None:
            on_progress(generator.live(), len(stages))
            if records_out is not None:
                row = to_row(None, item)  # type: ignore[arg-type]
                row.pop("run_id")
                records_out.write(orjson.dumps(row) + b"\n")

        while (stage := next_stage(config, stages)) is not None:
            outcome = await generator.run_stage(stage, on_record=record)
            stages.append(
                stage_result(
                    stage.describe(),
                    outcome.records,
                    outcome.duration_s,
                    config.slos,
                    stop_reason=outcome.stop_reason,
                    lag_ms=outcome.lag_ms,
                )
            )
    finally:
        if records_out is not None:
            records_out.close()
    return {
        "target": {"url": url, "model": model},
        "config": config.model_dump(mode="json"),
        "results": {
            "stages": stages,
            "summary": summarize(config, stages),
            "capacity": capacity(config, stages),
        },
    }


async def write_charts(directory: Path, name: str, stages: list[dict[str, Any]]) -> list[Path]:
    """The run's charts as SVG and PNG files (distributions need per-request values; a local
    run keeps them in its records file, so only the stage charts are drawn)."""
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - the CLI's own files
    written = []
    series = [charts.ChartSeries(name, stages)]
    for kind in ("latency", "throughput"):
        for fmt in ("svg", "png"):
            path = directory / f"{kind}.{fmt}"
            path.write_bytes(await charts.render(kind, series, fmt))
            written.append(path)
    return written
