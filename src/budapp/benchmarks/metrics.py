"""The figures of a stage, computed from its request records exactly as docs/benchmarks.md
defines them. Percentiles are numpy's default (linear interpolation between the two nearest
ranks, Hyndman and Fan's method 7, as vLLM and most tools use); standard deviations are of the
population (ddof 0). Records that were aborted (a stop or a cancel cut them) count nowhere."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from budapp.benchmarks.config import Slos
from budapp.benchmarks.loadgen import RequestRecord

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
# The metrics that are distributions, each in milliseconds.
DISTRIBUTIONS = ("ttft_ms", "ttst_ms", "tpot_ms", "icl_ms", "e2el_ms")


def _key(percentile: float) -> str:
    return "p" + f"{percentile:g}".replace(".", "_")


def distribution(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    array = np.asarray(values, dtype=float)
    found = np.percentile(array, PERCENTILES)
    result: dict[str, Any] = {
        "count": len(values),
        "mean": _round(float(array.mean())),
        "std": _round(float(array.std())),
        "min": _round(float(array.min())),
        "max": _round(float(array.max())),
    }
    result.update({_key(p): _round(float(v)) for p, v in zip(PERCENTILES, found, strict=True)})
    return result


def _round(value: float) -> float:
    return round(value, 4)


def time_to_second_token(record: RequestRecord) -> float | None:
    """The arrival of the chunk that carries the request's second token (the first chunk's,
    when it carried two or more)."""
    seen = 0
    for arrival, tokens in zip(record.chunk_ms, record.chunk_tokens, strict=True):
        seen += tokens
        if seen >= 2:
            return arrival
    return None


def meets(record: RequestRecord, slos: Slos) -> bool:
    # A one-token answer has no TPOT: it meets a TPOT SLO (no token came late).
    tpot = record.tpot_ms if record.tpot_ms is not None or record.output_tokens != 1 else 0.0
    checks = ((slos.ttft_ms, record.ttft_ms), (slos.tpot_ms, tpot), (slos.e2el_ms, record.e2el_ms))
    return all(limit is None or (value is not None and value <= limit) for limit, value in checks)


def token_source(records: Iterable[RequestRecord]) -> str:
    reported = {record.usage_reported for record in records if record.status == "ok"}
    if reported == {True}:
        return "usage"
    if reported == {False}:
        return "tokenizer"
    return "mixed" if reported else "none"


def per_second(records: Sequence[RequestRecord]) -> list[dict[str, Any]]:
    """Output tokens and finished requests per 1 s bucket of the stage. A request's output
    tokens are spread over its chunks in proportion to the chunks' counted tokens, and
    each chunk falls in the bucket of its arrival."""
    tokens: dict[int, float] = {}
    finished: Counter[int] = Counter()
    for record in records:
        if record.status != "ok":
            continue
        counted = sum(record.chunk_tokens) or 1
        scale = (record.output_tokens or 0) / counted
        for arrival, share in zip(record.chunk_ms, record.chunk_tokens, strict=True):
            second = math.floor(record.started_s + arrival / 1000)
            tokens[second] = tokens.get(second, 0.0) + share * scale
        finished[math.floor(record.ended_s)] += 1
    last = max([*tokens, *finished], default=-1)
    return [
        {"second": s, "output_tokens": round(tokens.get(s, 0.0), 3), "requests": finished.get(s, 0)}
        for s in range(last + 1)
    ]


def stage_metrics(
    records: Sequence[RequestRecord], duration_s: float, slos: Slos
) -> dict[str, Any]:
    ok = [r for r in records if r.status == "ok"]
    failed = [r for r in records if r.status == "error"]
    aborted = sum(1 for r in records if r.status == "aborted")
    finished = len(ok) + len(failed)
    duration = max(duration_s, 1e-9)
    input_tokens = sum(r.input_tokens or 0 for r in ok)
    output_tokens = sum(r.output_tokens or 0 for r in ok)
    series = per_second(records)
    good = sum(1 for r in ok if meets(r, slos)) if slos.given else None
    values: dict[str, list[float]] = {name: [] for name in DISTRIBUTIONS}
    for record in ok:
        values["ttft_ms"].append(record.ttft_ms or 0.0)
        values["e2el_ms"].append(record.e2el_ms or 0.0)
        if record.tpot_ms is not None:
            values["tpot_ms"].append(record.tpot_ms)
        if (second := time_to_second_token(record)) is not None:
            values["ttst_ms"].append(second)
        values["icl_ms"].extend(np.diff(record.chunk_ms).tolist())
    return {
        "duration_s": _round(duration_s),
        "requests": {
            "finished": finished,
            "succeeded": len(ok),
            "failed": len(failed),
            "aborted": aborted,
        },
        "request_throughput": _round(len(ok) / duration),
        "input_token_throughput": _round(input_tokens / duration),
        "output_token_throughput": _round(output_tokens / duration),
        "total_token_throughput": _round((input_tokens + output_tokens) / duration),
        "peak_output_tokens_per_s": max((b["output_tokens"] for b in series), default=0.0),
        "goodput": _round(good / duration) if good is not None else None,
        "slo_attainment": _round(good / len(ok)) if good is not None and ok else None,
        "tokens": {
            "input": input_tokens,
            "output": output_tokens,
            "source": token_source(records),
        },
        "errors": {
            "count": len(failed),
            "rate": _round(len(failed) / finished) if finished else 0.0,
            "by_kind": dict(sorted(Counter(r.error_kind or "unknown" for r in failed).items())),
        },
        **{name: distribution(values[name]) for name in DISTRIBUTIONS},
        "series": series,
    }


def holds(metrics: dict[str, Any], attainment: float, max_error_rate: float | None) -> bool:
    """Whether a stage passes a capacity search's test: enough requests met every SLO, and
    the error rate stayed within the bound (none allowed without one)."""
    if not metrics["requests"]["succeeded"]:
        return False
    if metrics["errors"]["rate"] > (max_error_rate or 0.0):
        return False
    return (metrics["slo_attainment"] or 0.0) >= attainment
