"""Delays are asserted from below only: a loaded machine may be slower, never faster."""

from __future__ import annotations

import time

import httpx
import pytest

from budapp.sim import SimConfig
from tests.sim.conftest import SimFactory

MESSAGES = [{"role": "user", "content": "hi"}]


def test_time_to_first_token_is_honoured(start_sim: SimFactory) -> None:
    client = start_sim(ttft_ms=300, output_tokens_min=3, output_tokens_max=3).client()

    started = time.perf_counter()
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert time.perf_counter() - started >= 0.3

    started = time.perf_counter()
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    first_content = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first_content = time.perf_counter() - started
            break
    stream.close()
    assert first_content is not None
    assert first_content >= 0.3


def test_inter_token_latency_paces_the_stream(start_sim: SimFactory) -> None:
    client = start_sim(ttft_ms=50, itl_ms=60, output_tokens_min=6, output_tokens_max=6).client()
    arrivals = []
    started = time.perf_counter()
    for chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter() - started)
    assert len(arrivals) == 6
    assert arrivals[-1] >= 0.05 + 5 * 0.06
    # Each token leaves at its own time: paced tokens do not arrive together.
    assert arrivals[-1] - arrivals[0] >= 5 * 0.06 * 0.9

    started = time.perf_counter()
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert time.perf_counter() - started >= 0.05 + 5 * 0.06


def test_jitter_keeps_delays_within_their_range(start_sim: SimFactory) -> None:
    client = start_sim(ttft_ms=200, ttft_jitter_ms=100, output_tokens_min=1,
                       output_tokens_max=1).client()  # fmt: skip
    for _ in range(3):
        started = time.perf_counter()
        client.completions.create(model="m", prompt="x")
        assert time.perf_counter() - started >= 0.1


def test_a_client_that_leaves_stops_the_stream(start_sim: SimFactory) -> None:
    running = start_sim(itl_ms=50, output_tokens_min=1000, output_tokens_max=1000)
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with (
        httpx.Client(base_url=running.base_url) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        lines = response.iter_lines()
        received = [next(lines) for _ in range(6)]  # role, two tokens, with blank lines
    assert any('"content":"' in line for line in received)

    # 1000 tokens at 50 ms would take 50 s; the generation must stop as soon as the client left.
    deadline = time.monotonic() + 10
    while running.app.in_flight or not running.metric("budapp_sim_client_disconnects_total"):
        assert time.monotonic() < deadline, "the stream went on after its client left"
        time.sleep(0.05)
    assert running.metric("budapp_sim_tokens_total", kind="completion") < 100
    assert (
        running.metric("budapp_sim_requests_total", route="/v1/chat/completions", status="499") == 1
    )
    produced = running.metric("budapp_sim_tokens_total", kind="completion")
    time.sleep(0.3)
    assert running.metric("budapp_sim_tokens_total", kind="completion") == produced


def test_a_client_that_leaves_a_delayed_answer_frees_its_slot(start_sim: SimFactory) -> None:
    running = start_sim(ttft_ms=30_000, max_concurrency=1)
    with (
        httpx.Client(base_url=running.base_url, timeout=0.3) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        http.post("/v1/completions", json={"model": "m", "prompt": "x"})
    deadline = time.monotonic() + 10
    while running.app.in_flight:
        assert time.monotonic() < deadline, "the request went on after its client left"
        time.sleep(0.05)
    assert running.metric("budapp_sim_client_disconnects_total") == 1


def test_tokens_per_chunk_groups_tokens_at_the_same_pace(start_sim: SimFactory) -> None:
    """The first token comes alone, then chunks of three; a chunk of k tokens comes k ITLs
    after the previous one, so the stream takes as long as one token per chunk would."""
    client = start_sim(itl_ms=20, tokens_per_chunk=3, output_tokens_min=10,
                       output_tokens_max=10).client()  # fmt: skip
    pieces, arrivals, usage = [], [], None
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            arrivals.append(time.perf_counter() - started)
    assert usage is not None
    assert usage.completion_tokens == 10
    assert len(pieces) == 4  # 1 + 3 + 3 + 3 tokens
    whole = client.chat.completions.create(model="m", messages=MESSAGES, seed=1)
    assert whole.usage is not None
    assert whole.usage.completion_tokens == 10
    assert arrivals[-1] >= 9 * 0.02
    # Chunks, not tokens, are paced: chunks 2 to 4 span two gaps of three ITLs each (the
    # first arrival may be read late, and a chunk late by less than one ITL is caught up).
    assert arrivals[-1] - arrivals[1] >= 2 * 3 * 0.02 * 0.9


def test_tokens_per_chunk_must_be_positive() -> None:
    with pytest.raises(ValueError, match="tokens_per_chunk"):
        SimConfig(tokens_per_chunk=0)
