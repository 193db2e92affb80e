"""The load generator: one stage of a benchmark at a time, closed loop (a fixed number of
requests in flight) or open loop (requests started at a rate, whatever the answers take),
every request streamed and timed chunk by chunk. It knows nothing of budapp's database: the
caller receives each finished request through `on_record` and may stop the stage at any time.

Timing uses `time.perf_counter()` from just before the request is sent; a content chunk is
timed when its event is parsed (see docs/benchmarks.md for what each figure means)."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import orjson

from budapp.benchmarks.config import BenchmarkConfig
from budapp.benchmarks.outbound import auth_headers, open_client
from budapp.benchmarks.prompts import PromptSource, count_tokens

_ERROR_RATE_AFTER = 20  # finished requests before max_error_rate is judged
_LIVE_WINDOW_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Target:
    """OpenAI-compatible base URLs (ending in `/v1`; requests go round-robin over them), the
    model name to send, and the key, if any, sent as `Authorization: Bearer`."""

    base_urls: tuple[str, ...]
    model: str
    api_key: str | None = None


@dataclass(frozen=True, slots=True)
class Stage:
    index: int
    label: str
    mode: Literal["closed", "open"]
    # closed: requests in flight; open: the most in flight (None: no limit).
    concurrency: int | None = None
    rate: float | None = None
    arrivals: str = "poisson"
    burstiness: float = 1.0

    def describe(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "label": self.label,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "rate": self.rate,
            "arrivals": self.arrivals if self.mode == "open" else None,
            "burstiness": self.burstiness if self.mode == "open" else None,
        }


@dataclass(slots=True)
class RequestRecord:
    stage: int
    sequence: int
    # Seconds from the stage's start to the request's start.
    started_s: float
    status: Literal["ok", "error", "aborted"] = "ok"
    http_status: int | None = None
    error_kind: str | None = None
    error: str | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    # Token counts from the server's `usage` (False: counted by the fallback tokenizer).
    usage_reported: bool = False
    # Each content chunk: its arrival (ms from the request's start) and its tokens as the
    # fallback tokenizer counts them.
    chunk_ms: list[float] = field(default_factory=list)
    chunk_tokens: list[int] = field(default_factory=list)

    def fail(self, kind: str, message: str, status: int | None = None) -> None:
        self.status, self.error_kind, self.error = "error", kind, message[:500]
        self.http_status = status

    @property
    def ended_s(self) -> float:
        return self.started_s + (self.e2el_ms or 0.0) / 1000


@dataclass(slots=True)
class StageOutcome:
    stage: Stage
    records: list[RequestRecord]
    duration_s: float
    stop_reason: str
    # Open loop: how late each request started against its schedule (the generator's lag).
    lag_ms: list[float]


def error_kind(status: int) -> str:
    if status == 429:
        return "http_429"
    return "http_5xx" if status >= 500 else "http_4xx"


class _Pacer:
    """Never lets two request starts come closer than 1/max_rate: the operator's ceiling on
    request rate holds even for a closed loop against a very fast server."""

    def __init__(self, max_rate: float | None) -> None:
        self.interval = 1.0 / max_rate if max_rate else 0.0
        self.last = -math.inf
        # One admission at a time, timed after its sleep: a waiter that wakes late cannot
        # let the next one in early.
        self.lock = asyncio.Lock()

    async def admit(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            wait = self.last + self.interval - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)  # never wakes early: the gap is at least `interval`
            self.last = time.perf_counter()


class _Run:
    """The state of one stage in progress."""

    def __init__(self, stage: Stage, config: BenchmarkConfig, on_record: Callable[..., None]):
        self.stage = stage
        self.bounds = config.bounds
        self.on_record = on_record
        self.started = time.perf_counter()
        self.records: list[RequestRecord] = []
        self.issued = 0
        self.finished = 0
        self.errors = 0
        self.halt = asyncio.Event()
        self.reason = ""
        self.abort = False
        self.lag_ms: list[float] = []
        self.recent: deque[tuple[float, float | None, float | None]] = deque()

    def next_sequence(self) -> int | None:
        limit = self.bounds.max_requests
        if self.halt.is_set() or (limit is not None and self.issued >= limit):
            return None
        sequence = self.issued
        self.issued += 1
        if limit is not None and self.issued >= limit:
            self.stop("max_requests")
        return sequence

    def stop(self, reason: str, *, abort: bool = False) -> None:
        if not self.halt.is_set():
            self.reason, self.abort = reason, abort
            self.halt.set()
        elif abort:
            self.abort = True

    def record(self, record: RequestRecord) -> None:
        self.records.append(record)
        self.on_record(record)
        if record.status == "aborted":
            return
        self.finished += 1
        self.recent.append((time.perf_counter(), record.ttft_ms, record.tpot_ms))
        if record.status == "error":
            self.errors += 1
            bounds = self.bounds
            if bounds.max_errors is not None and self.errors >= bounds.max_errors:
                self.stop("max_errors", abort=True)
            elif (
                bounds.max_error_rate is not None
                and self.finished >= _ERROR_RATE_AFTER
                and self.errors / self.finished > bounds.max_error_rate
            ):
                self.stop("max_error_rate", abort=True)

    def live(self) -> dict[str, Any]:
        """Requests done, the request rate and median TTFT/TPOT over the last seconds."""
        now = time.perf_counter()
        while self.recent and now - self.recent[0][0] > _LIVE_WINDOW_SECONDS:
            self.recent.popleft()
        window = min(_LIVE_WINDOW_SECONDS, max(now - self.started, 1e-3))
        ttfts = sorted(t for _, t, _ in self.recent if t is not None)
        tpots = sorted(t for _, _, t in self.recent if t is not None)
        return {
            "stage": self.stage.index,
            "stage_label": self.stage.label,
            "requests_done": self.finished,
            "errors": self.errors,
            "elapsed_s": round(now - self.started, 3),
            "current_rate": round(len(self.recent) / window, 3),
            "ttft_p50_ms": round(ttfts[len(ttfts) // 2], 3) if ttfts else None,
            "tpot_p50_ms": round(tpots[len(tpots) // 2], 3) if tpots else None,
        }


class LoadGenerator:
    def __init__(
        self,
        target: Target,
        config: BenchmarkConfig,
        prompts: PromptSource,
        *,
        max_rate: float | None = None,
    ) -> None:
        route = "chat/completions" if config.api == "chat" else "completions"
        self.urls = [f"{url.rstrip('/')}/{route}" for url in target.base_urls]
        self.headers = {"Content-Type": "application/json", **auth_headers(target.api_key)}
        self.target = target
        self.config = config
        self.prompts = prompts
        self.max_rate = max_rate
        self.current: _Run | None = None

    def live(self) -> dict[str, Any] | None:
        return self.current.live() if self.current is not None else None

    async def run_stage(
        self,
        stage: Stage,
        *,
        on_record: Callable[[RequestRecord], None] = lambda _: None,
        stop: asyncio.Event | None = None,
    ) -> StageOutcome:
        run = self.current = _Run(stage, self.config, on_record)
        pacer = _Pacer(self.max_rate)
        connections = stage.concurrency or 10_000
        async with open_client(connections, self.config.bounds.request_timeout_seconds) as client:
            in_flight: set[asyncio.Task[None]] = set()
            if stage.mode == "closed":
                drivers = [
                    asyncio.create_task(self._worker(client, run, pacer))
                    for _ in range(stage.concurrency or 1)
                ]
            else:
                drivers = [asyncio.create_task(self._dispatch(client, run, pacer, in_flight))]
            await self._watch(run, stop)
            await self._drain(run, drivers, in_flight)
        ended = [r.ended_s for r in run.records if r.status != "aborted"]
        duration = max(ended) if ended else time.perf_counter() - run.started
        self.current = None
        return StageOutcome(stage, run.records, duration, run.reason, run.lag_ms)

    async def _watch(self, run: _Run, stop: asyncio.Event | None) -> None:
        """Until the stage's duration is over, a bound is reached or the caller stops it."""
        waits = [asyncio.create_task(run.halt.wait())]
        if stop is not None:
            waits.append(asyncio.create_task(stop.wait()))
        try:
            done, _ = await asyncio.wait(
                waits,
                timeout=self.config.bounds.duration_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for task in waits:
                task.cancel()
        if stop is not None and stop.is_set():
            run.stop("cancelled", abort=True)
        elif not done:
            run.stop("duration")

    async def _drain(
        self, run: _Run, drivers: list[asyncio.Task[None]], in_flight: set[asyncio.Task[None]]
    ) -> None:
        """Requests in flight at the stop get `drain_seconds` to finish; an abort cancels
        them at once."""
        grace = 0.0 if run.abort else self.config.bounds.drain_seconds
        pending = [task for task in (*drivers, *in_flight) if not task.done()]
        if pending and grace:
            _, still = await asyncio.wait(pending, timeout=grace)
            pending = list(still)
        for task in pending:
            task.cancel()
        await asyncio.gather(*drivers, *in_flight, return_exceptions=True)

    async def _worker(self, client: aiohttp.ClientSession, run: _Run, pacer: _Pacer) -> None:
        while (sequence := run.next_sequence()) is not None:
            await pacer.admit()
            if run.halt.is_set() and run.reason != "max_requests":
                break
            await self._send(client, run, sequence)

    async def _dispatch(
        self,
        client: aiohttp.ClientSession,
        run: _Run,
        pacer: _Pacer,
        in_flight: set[asyncio.Task[None]],
    ) -> None:
        stage = run.stage
        rng = random.Random(f"{self.config.seed}:arrivals:{stage.index}")  # noqa: S311
        slots = asyncio.Semaphore(stage.concurrency) if stage.concurrency else None
        rate = stage.rate or 1.0
        due = time.perf_counter()
        while not run.halt.is_set():
            wait = due - time.perf_counter()
            while wait > 0 and not run.halt.is_set():
                # In slices, so that a stop is heard within a quarter of a second.
                await asyncio.sleep(min(wait, 0.25))
                wait = due - time.perf_counter()
            if slots is not None:
                await slots.acquire()
            await pacer.admit()
            sequence = run.next_sequence()
            if sequence is None:
                if slots is not None:
                    slots.release()
                break
            run.lag_ms.append(max(0.0, (time.perf_counter() - due) * 1000))
            task = asyncio.create_task(self._send(client, run, sequence))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            if slots is not None:
                task.add_done_callback(lambda _: slots.release())
            due += _gap(rng, rate, stage.arrivals, stage.burstiness)

    async def _send(self, client: aiohttp.ClientSession, run: _Run, sequence: int) -> None:
        prompt = self.prompts.prompt(sequence)
        body = orjson.dumps(self.prompts.body(prompt, self.target.model))
        url = self.urls[sequence % len(self.urls)]
        started = time.perf_counter()
        record = RequestRecord(run.stage.index, sequence, started - run.started)
        try:
            async with client.post(url, data=body, headers=self.headers) as response:
                if response.status != 200:
                    text = await response.text(errors="replace")
                    record.fail(error_kind(response.status), text, response.status)
                else:
                    record.http_status = 200
                    await _read_stream(response, record, started)
        except asyncio.CancelledError:
            record.status, record.error_kind = "aborted", None
            run.record(record)
            raise
        except TimeoutError:
            record.fail("timeout", "no complete answer within the request timeout")
        except aiohttp.ClientPayloadError as exc:
            record.fail("stream_error", str(exc) or "the stream was cut")
        except aiohttp.ClientError as exc:
            record.fail("connect_error", str(exc) or type(exc).__name__)
        except orjson.JSONDecodeError:
            record.fail("invalid_response", "a stream event is not JSON")
        record.e2el_ms = (time.perf_counter() - started) * 1000
        _complete(record, prompt.estimated_input_tokens())
        run.record(record)


def _gap(rng: random.Random, rate: float, arrivals: str, burstiness: float) -> float:
    if arrivals == "constant":
        return 1.0 / rate
    # Gamma with shape k and mean 1/rate; k = 1 is the exponential gap of a Poisson process.
    return rng.gammavariate(burstiness, 1.0 / (rate * burstiness))


async def _read_stream(
    response: aiohttp.ClientResponse, record: RequestRecord, started: float
) -> None:
    done = False
    async for line in response.content:
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            break
        event = orjson.loads(data)
        if not isinstance(event, dict):
            continue
        if event.get("error"):
            message = event["error"].get("message") if isinstance(event["error"], dict) else None
            record.fail("stream_error", str(message or event["error"]))
            return
        usage = event.get("usage")
        if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
            record.input_tokens = usage.get("prompt_tokens")
            record.output_tokens = usage.get("completion_tokens")
            record.usage_reported = True
        for choice in event.get("choices") or ():
            text = _content(choice)
            if text:
                record.chunk_ms.append((time.perf_counter() - started) * 1000)
                record.chunk_tokens.append(max(1, count_tokens(text)))
    if not done:
        record.fail("stream_error", "the stream ended without [DONE]")


def _content(choice: Any) -> str | None:
    if not isinstance(choice, dict):
        return None
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return delta.get("content") or delta.get("reasoning_content") or None
    return choice.get("text") or None


def _complete(record: RequestRecord, estimated_input: int) -> None:
    if record.status != "ok":
        return
    if not record.chunk_ms:
        record.fail("empty_response", "the stream carried no content", record.http_status)
        return
    record.ttft_ms = record.chunk_ms[0]
    if not record.usage_reported:
        record.input_tokens = estimated_input
        record.output_tokens = sum(record.chunk_tokens)
    output = record.output_tokens or 0
    if output >= 2 and record.e2el_ms is not None:
        record.tpot_ms = (record.e2el_ms - record.ttft_ms) / (output - 1)
