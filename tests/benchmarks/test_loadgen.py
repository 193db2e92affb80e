"""The load generator against budapp-sim, whose configured TTFT, ITL, output length and tokens
per chunk are the ground truth. Delays are small and requests few: the figures must be within
5 % of the configuration at low load (one or two requests at a time)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from budapp.benchmarks.config import BenchmarkConfig
from budapp.benchmarks.loadgen import LoadGenerator, Stage, Target
from budapp.benchmarks.metrics import stage_metrics
from budapp.benchmarks.plans import capacity, next_stage
from budapp.benchmarks.prompts import PromptSource
from tests.benchmarks.conftest import SimProcess
from tests.gateway.conftest import canned_backend
from tests.sim.conftest import SimFactory


def config(**fields: Any) -> BenchmarkConfig:
    body: dict[str, Any] = {
        "profile": {"kind": "concurrency", "concurrency": 1},
        "prompts": {"input_tokens": {"value": 32}, "output_tokens": {"value": 16}},
        "bounds": {"duration_seconds": 30, "max_requests": 6},
        **fields,
    }
    return BenchmarkConfig.model_validate(body)


async def measure(base_url: str, cfg: BenchmarkConfig, stage: Stage, **options: Any) -> Any:
    generator = LoadGenerator(
        Target((base_url + "/v1",), "sim-model"), cfg, PromptSource(cfg), **options
    )
    outcome = await generator.run_stage(stage)
    return outcome, stage_metrics(outcome.records, outcome.duration_s, cfg.slos)


def within(measured: float, expected: float, share: float = 0.05) -> bool:
    return abs(measured - expected) <= expected * share


async def test_ttft_tpot_and_token_counts_match_the_simulator(sim_process: SimProcess) -> None:
    base_url = sim_process("--ttft-ms", "400", "--itl-ms", "25", "--output-tokens", "64")
    cfg = config()
    outcome, metrics = await measure(base_url, cfg, Stage(0, "c1", "closed", 1))
    assert outcome.stop_reason == "max_requests"
    assert metrics["requests"]["succeeded"] == 6
    assert within(metrics["ttft_ms"]["p50"], 400), metrics["ttft_ms"]
    assert within(metrics["tpot_ms"]["p50"], 25), metrics["tpot_ms"]
    # One token per chunk: the chunk gaps are the per-token gaps.
    assert within(metrics["icl_ms"]["p50"], 25), metrics["icl_ms"]
    # max_tokens with ignore_eos fixes the output below the simulator's own 64 tokens.
    assert {r.output_tokens for r in outcome.records} == {16}
    assert {r.input_tokens for r in outcome.records} == {32}
    assert metrics["tokens"] == {"input": 6 * 32, "output": 6 * 16, "source": "usage"}


async def test_icl_is_tpot_times_tokens_per_chunk(sim_process: SimProcess) -> None:
    base_url = sim_process("--ttft-ms", "50", "--itl-ms", "20", "--tokens-per-chunk", "4")
    cfg = config(prompts={"output_tokens": {"value": 33}})  # 1 + 8 chunks of 4
    outcome, metrics = await measure(base_url, cfg, Stage(0, "c2", "closed", 2))
    assert {len(r.chunk_ms) for r in outcome.records} == {9}
    assert {r.output_tokens for r in outcome.records} == {33}
    tpot, icl = metrics["tpot_ms"]["p50"], metrics["icl_ms"]["p50"]
    assert within(tpot, 20), metrics["tpot_ms"]
    assert within(icl, tpot * 4), (icl, tpot)
    # The second token comes with the second chunk, four ITLs after the first.
    second = metrics["ttst_ms"]["p50"] - metrics["ttft_ms"]["p50"]
    assert within(second, 4 * 20, 0.1), metrics["ttst_ms"]


async def test_a_server_without_usage_is_counted_by_the_tokenizer() -> None:
    events = [
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":", world!"}}]}\n\n',
        b"data: [DONE]\n\n",
    ]
    body = b"".join(events)
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    cfg = config(bounds={"max_requests": 2, "duration_seconds": 10})
    with canned_backend(answer) as base_url:
        outcome, metrics = await measure(base_url, cfg, Stage(0, "c1", "closed", 1))
    assert {r.output_tokens for r in outcome.records} == {4}  # Hello , world !
    assert {r.usage_reported for r in outcome.records} == {False}
    assert metrics["tokens"]["source"] == "tokenizer"


async def test_errors_stop_the_stage_at_the_bound_and_are_counted_by_kind(
    start_sim: SimFactory,
) -> None:
    sim = start_sim(failure_rate=1.0, failure_status=503)
    cfg = config(bounds={"max_errors": 3, "duration_seconds": 30})
    outcome, metrics = await measure(sim.base_url, cfg, Stage(0, "c1", "closed", 1))
    assert outcome.stop_reason == "max_errors"
    assert metrics["errors"]["count"] == 3
    assert metrics["errors"]["by_kind"] == {"http_5xx": 3}
    assert metrics["errors"]["rate"] == 1.0
    assert {r.http_status for r in outcome.records} == {503}


async def test_the_rate_ceiling_spaces_request_starts(start_sim: SimFactory) -> None:
    sim = start_sim()
    cfg = config(bounds={"max_requests": 8, "duration_seconds": 30})
    outcome, _ = await measure(sim.base_url, cfg, Stage(0, "c8", "closed", 8), max_rate=40.0)
    starts = sorted(r.started_s for r in outcome.records)
    assert len(starts) == 8
    for earlier, later in itertools.pairwise(starts):
        assert later - earlier >= 1 / 40 * 0.9


async def test_an_open_loop_follows_its_rate(start_sim: SimFactory) -> None:
    sim = start_sim(ttft_ms=5)
    cfg = config(bounds={"duration_seconds": 1.0, "drain_seconds": 5})
    stage = Stage(0, "rate 20", "open", None, 20.0, "constant")
    outcome, metrics = await measure(sim.base_url, cfg, stage)
    assert outcome.stop_reason == "duration"
    # Constant arrivals every 50 ms for a second: about 20 requests.
    assert 15 <= metrics["requests"]["succeeded"] <= 21
    assert metrics["requests"]["aborted"] == 0


@pytest.mark.parametrize("api", ["chat", "completions"])
async def test_both_apis_are_measured(start_sim: SimFactory, api: str) -> None:
    sim = start_sim(ttft_ms=5, itl_ms=1)
    cfg = config(api=api, bounds={"max_requests": 2, "duration_seconds": 10})
    _, metrics = await measure(sim.base_url, cfg, Stage(0, "c1", "closed", 1))
    assert metrics["requests"]["succeeded"] == 2
    assert metrics["tokens"]["output"] == 32


async def test_a_capacity_search_finds_the_highest_concurrency_that_holds(
    start_sim: SimFactory,
) -> None:
    """The simulator answers two requests at once and refuses the rest (429): the SLOs hold
    at concurrency 2, and no higher, whatever the TTFT SLO."""
    sim = start_sim(ttft_ms=20, max_concurrency=2)
    cfg = config(
        profile={"kind": "capacity", "search": "concurrency", "low": 1, "high": 8, "steps": 6},
        bounds={"max_requests": 8, "duration_seconds": 10},
        slos={"ttft_ms": 10_000},
    )
    generator = LoadGenerator(Target((sim.base_url + "/v1",), "m"), cfg, PromptSource(cfg))
    done: list[dict[str, Any]] = []
    while (stage := next_stage(cfg, done)) is not None:
        outcome = await generator.run_stage(stage)
        done.append(
            {
                "stage": stage.describe(),
                "metrics": stage_metrics(outcome.records, outcome.duration_s, cfg.slos),
            }
        )
    found = capacity(cfg, done)
    assert found is not None
    assert found["capacity"] == 2
    assert found["lowest_failing"] == 3
    assert [stage["stage"]["concurrency"] for stage in done] == [1, 8, 4, 2, 3]
