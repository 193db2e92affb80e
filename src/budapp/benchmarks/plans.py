"""Which stage comes next, from the profile and the stages already measured. A pure function
of its inputs, so that a resumed workflow plans exactly the stages an uninterrupted one would:
a sweep's interpolated rates come from the rates its first two stages measured, a capacity
search bisects on what its probes found."""

from __future__ import annotations

from typing import Any

from budapp.benchmarks.config import (
    BenchmarkConfig,
    CapacityProfile,
    ConcurrencyProfile,
    RateProfile,
    SweepProfile,
)
from budapp.benchmarks.loadgen import Stage
from budapp.benchmarks.metrics import holds


def next_stage(
    config: BenchmarkConfig, done: list[dict[str, Any]], *, max_rate: float | None = None
) -> Stage | None:
    """`done`: the stored results of the stages measured so far, in order (each with its
    `stage` description and `metrics`). None: the run is complete."""
    profile = config.profile
    index = len(done)
    if isinstance(profile, ConcurrencyProfile):
        if index:
            return None
        return Stage(0, f"concurrency {profile.concurrency}", "closed", profile.concurrency)
    if isinstance(profile, RateProfile):
        if index:
            return None
        return Stage(
            0,
            f"rate {profile.rate:g}/s",
            "open",
            profile.max_concurrency,
            _capped(profile.rate, max_rate),
            profile.arrivals,
            profile.burstiness,
        )
    if isinstance(profile, SweepProfile):
        return _sweep_stage(profile, done, max_rate)
    return _capacity_stage(config, profile, done, max_rate)


def _capped(rate: float, max_rate: float | None) -> float:
    return min(rate, max_rate) if max_rate else rate


def _sweep_stage(
    profile: SweepProfile, done: list[dict[str, Any]], max_rate: float | None
) -> Stage | None:
    index = len(done)
    if index == 0:
        return Stage(0, "synchronous", "closed", 1)
    if index == 1:
        return Stage(1, "throughput", "closed", profile.max_concurrency)
    if index >= profile.points:
        return None
    low = done[0]["metrics"]["request_throughput"]
    high = done[1]["metrics"]["request_throughput"]
    if high <= low:
        # No headroom above one request at a time: nothing lies between the two.
        return None
    step = (high - low) / (profile.points - 1)
    rate = _capped(round(low + step * (index - 1), 3), max_rate)
    return Stage(
        index,
        f"rate {rate:.4g}/s",
        "open",
        None,
        rate,
        profile.arrivals,
        profile.burstiness,
    )


def _load_of(stage: dict[str, Any], search: str) -> float:
    value = stage["stage"]["rate"] if search == "rate" else stage["stage"]["concurrency"]
    return float(value)


def bracket(
    config: BenchmarkConfig, profile: CapacityProfile, done: list[dict[str, Any]]
) -> tuple[float | None, float | None]:
    """The highest load that held and the lowest that failed, among the probes so far."""
    passed = None
    failed = None
    for stage in done:
        load = _load_of(stage, profile.search)
        if holds(stage["metrics"], profile.attainment, config.bounds.max_error_rate):
            passed = load if passed is None else max(passed, load)
        else:
            failed = load if failed is None else min(failed, load)
    return passed, failed


def _capacity_stage(  # noqa: PLR0911 - each way the search can end, said where it ends
    config: BenchmarkConfig,
    profile: CapacityProfile,
    done: list[dict[str, Any]],
    max_rate: float | None,
) -> Stage | None:
    index = len(done)
    if index >= profile.steps:
        return None
    high = _capped(profile.high, max_rate) if profile.search == "rate" else profile.high
    passed, failed = bracket(config, profile, done)
    if index == 0:
        load = profile.low
    elif index == 1:
        if passed is None:
            return None  # even the lowest load fails: the capacity is below `low`
        load = high
    else:
        if failed is None or passed is None:
            return None  # the highest load holds (or nothing does): the search is over
        if (failed - passed) / failed <= profile.tolerance:
            return None
        load = (passed + failed) / 2
    if profile.search == "concurrency":
        whole = round(load)
        if done and any(_load_of(stage, "concurrency") == whole for stage in done):
            return None  # the bracket is down to neighbouring integers
        return Stage(index, f"concurrency {whole}", "closed", whole)
    return Stage(
        index,
        f"rate {load:.4g}/s",
        "open",
        None,
        load,
        profile.arrivals,
        profile.burstiness,
    )


def capacity(config: BenchmarkConfig, done: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A capacity search's answer: the highest load at which the SLOs held."""
    profile = config.profile
    if not isinstance(profile, CapacityProfile):
        return None
    passed, failed = bracket(config, profile, done)
    return {
        "search": profile.search,
        "capacity": passed,
        "lowest_failing": failed,
        "attainment": profile.attainment,
        "slos": config.slos.model_dump(exclude_none=True),
        "probes": len(done),
        "below_low": passed is None and bool(done),
        "at_least_high": failed is None and passed is not None,
    }
