"""Charts of one run or of several overlaid, as SVG or PNG, drawn on the server with
matplotlib's Agg and SVG canvases (no browser, no display). matplotlib takes about a second
to import, so it is imported here only, when a chart is asked for, and drawing runs in a
worker thread; each chart is its own Figure (the object API is safe across threads, pyplot's
global state is not, and is never used).

- `latency`: TTFT and TPOT percentiles (p50, p90, p99) against the request rate measured in
  each stage (a sweep's curve; one point per run otherwise).
- `ttft`, `tpot`: the distribution of the per-request values (histogram).
- `throughput`: output tokens per second in 1 s buckets, over the run's stages end to end.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["latency", "ttft", "tpot", "throughput"]
Format = Literal["svg", "png"]
MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


@dataclass
class ChartSeries:
    """What one run contributes to a chart."""

    name: str
    stages: list[dict[str, Any]] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    tpot_ms: list[float] = field(default_factory=list)


async def render(kind: Kind, runs: list[ChartSeries], fmt: Format) -> bytes:
    return await asyncio.to_thread(_render, kind, runs, fmt)


def _render(kind: Kind, runs: list[ChartSeries], fmt: Format) -> bytes:
    from matplotlib.figure import Figure  # noqa: PLC0415 - heavy: only when drawing

    figure = Figure(figsize=(10, 4.5) if kind == "latency" else (8, 4.5), dpi=100)
    if kind == "latency":
        _latency(figure, runs)
    elif kind == "throughput":
        _throughput(figure, runs)
    else:
        _distribution(figure, runs, kind)
    figure.tight_layout()
    out = io.BytesIO()
    if fmt == "svg":
        from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: PLC0415

        FigureCanvasSVG(figure).print_svg(out)  # type: ignore[no-untyped-call]
    else:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415

        FigureCanvasAgg(figure).print_png(out)  # type: ignore[no-untyped-call]
    return out.getvalue()


def _points(
    stages: list[dict[str, Any]], metric: str, stat: str
) -> tuple[list[float], list[float]]:
    pairs = sorted(
        (stage["metrics"]["request_throughput"], stage["metrics"][metric].get(stat))
        for stage in stages
        if stage["metrics"][metric].get(stat) is not None
    )
    return [x for x, _ in pairs], [y for _, y in pairs]


def _latency(figure: Any, runs: list[ChartSeries]) -> None:
    for position, (metric, title) in enumerate((("ttft_ms", "TTFT"), ("tpot_ms", "TPOT")), 1):
        axes = figure.add_subplot(1, 2, position)
        for run in runs:
            for stat, style in (("p50", "-o"), ("p90", "--s"), ("p99", ":^")):
                xs, ys = _points(run.stages, metric, stat)
                if xs:
                    axes.plot(xs, ys, style, label=f"{run.name} {stat}", markersize=4)
        axes.set_title(f"{title} percentiles vs request rate")
        axes.set_xlabel("request rate (req/s)")
        axes.set_ylabel(f"{title} (ms)")
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend(fontsize=7)


def _distribution(figure: Any, runs: list[ChartSeries], kind: Kind) -> None:
    axes = figure.add_subplot(1, 1, 1)
    for run in runs:
        values = run.ttft_ms if kind == "ttft" else run.tpot_ms
        if values:
            axes.hist(values, bins=40, histtype="step", linewidth=1.5, label=run.name)
    label = "TTFT" if kind == "ttft" else "TPOT"
    axes.set_title(f"{label} distribution (per request)")
    axes.set_xlabel(f"{label} (ms)")
    axes.set_ylabel("requests")
    axes.grid(alpha=0.3)
    if axes.patches:
        axes.legend(fontsize=8)


def _throughput(figure: Any, runs: list[ChartSeries]) -> None:
    axes = figure.add_subplot(1, 1, 1)
    for run in runs:
        xs: list[float] = []
        ys: list[float] = []
        offset = 0.0
        for stage in run.stages:
            series = stage["metrics"].get("series") or []
            xs += [offset + bucket["second"] for bucket in series]
            ys += [bucket["output_tokens"] for bucket in series]
            offset += max(len(series), 1)
        if xs:
            axes.plot(xs, ys, drawstyle="steps-post", label=run.name)
    axes.set_title("Output tokens per second (1 s buckets), stage after stage")
    axes.set_xlabel("time (s)")
    axes.set_ylabel("output tokens/s")
    axes.grid(alpha=0.3)
    if axes.lines:
        axes.legend(fontsize=8)
