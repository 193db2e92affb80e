"""The simulator as a raw ASGI application: no framework between uvicorn and the handlers.

A load test of the gateway measures the gateway, so the simulator must cost as little as
possible per request: routes are a dict lookup, bodies are parsed with orjson and checked by
hand (protocol.py), and a stream's chunk envelope is encoded once (responses.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from budapp.sim import responses
from budapp.sim.config import FailureMode, SimConfig
from budapp.sim.errors import (
    ApiError,
    SimulatedAbort,
    bad_request,
    model_not_found,
    simulated_failure,
    too_many_requests,
)
from budapp.sim.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from budapp.sim.metrics import SimMetrics
from budapp.sim.protocol import (
    GenerationRequest,
    Prompt,
    parse_chat,
    parse_completion,
    parse_embedding,
)
from budapp.sim.responses import Choice, ChunkEncoder
from budapp.sim.text import generate

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
CLIENT_GONE = 499  # the status recorded for a request whose client went away (nginx's code)
ABORTED = 599  # recorded for a stream cut on purpose by the `abort` failure mode
STARTED = int(time.time())  # `created` of the listed models

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
MODELS = "/v1/models"


class ClientGone(Exception):
    """The client disconnected before its request body was read."""


@dataclass(slots=True)
class Disconnect:
    seen: bool = False


class SimApp:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.metrics = SimMetrics()
        self.in_flight = 0
        # Failures, delays' jitter and (without a seed) the text: one stream of numbers, so a
        # seeded run replays the same sequence for the same order of requests.
        self._rng = random.Random(config.seed)  # noqa: S311 (simulation, not security)
        self._models = frozenset(config.models)
        self._models_body = orjson.dumps(
            {"object": "list", "data": [self._model_card(name) for name in config.listed_models]}
        )
        self._posts: dict[str, Callable[[dict[str, Any], Receive, Send], Awaitable[int]]] = {
            CHAT: self._chat,
            COMPLETIONS: self._completions,
            EMBEDDINGS: self._embeddings,
        }
        self._paced = config.ttft_ms > 0 or config.itl_ms > 0 or config.ttft_jitter_ms > 0
        self._paced = self._paced or config.itl_jitter_ms > 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    # --- routing --------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        handler = self._posts.get(path)
        if handler is not None:
            if method == "POST":
                await self._generation_route(path, handler, receive, send)
            else:
                await self._error(send, ApiError(405, f"Method {method} not allowed on {path}"))
            return
        if method not in ("GET", "HEAD"):
            known = path in ("/health", "/metrics", MODELS) or path.startswith(MODELS + "/")
            status = 405 if known else 404
            await self._error(send, ApiError(status, f"Method {method} not allowed on {path}"))
        elif path == "/health":
            await self._send(send, 200, b'{"status":"ok"}')
        elif path == "/metrics":
            body = self.metrics.render()
            await self._send(send, 200, body, [(b"content-type", METRICS_CONTENT_TYPE.encode())])
        elif path == MODELS:
            await self._send(send, 200, self._models_body)
        elif path.startswith(MODELS + "/"):
            name = path[len(MODELS) + 1 :]
            if name in self.config.listed_models:
                await self._send(send, 200, orjson.dumps(self._model_card(name)))
            else:
                await self._error(send, model_not_found(name))
        else:
            await self._error(send, ApiError(404, f"Unknown route: {method} {path}", code=None))

    async def _generation_route(
        self,
        path: str,
        handler: Callable[[dict[str, Any], Receive, Send], Awaitable[int]],
        receive: Receive,
        send: Send,
    ) -> None:
        started = time.perf_counter()
        limit = self.config.max_concurrency
        if limit and self.in_flight >= limit:
            await self._error(send, too_many_requests(limit, self.config.retry_after_s))
            self.metrics.record_request(path, 429, time.perf_counter() - started)
            return
        self.in_flight += 1
        self.metrics.in_flight.inc()
        status = 500
        try:
            body = await self._json_body(receive)
            status = await handler(body, receive, send)
        except ApiError as error:
            status = error.status
            await self._error(send, error)
        except ClientGone:
            status = CLIENT_GONE
            self.metrics.disconnects.inc()
        except SimulatedAbort:
            status = ABORTED
            raise
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()
            self.metrics.record_request(path, status, time.perf_counter() - started)

    # --- handlers -------------------------------------------------------------------------------

    async def _chat(self, body: dict[str, Any], receive: Receive, send: Send) -> int:
        request = parse_chat(body, self.config.max_choices)
        return await self._generate(request, True, receive, send)

    async def _completions(self, body: dict[str, Any], receive: Receive, send: Send) -> int:
        request = parse_completion(body, self.config.max_choices)
        return await self._generate(request, False, receive, send)

    async def _embeddings(self, body: dict[str, Any], _receive: Receive, send: Send) -> int:
        request = parse_embedding(body)
        self._check_model(request.model)
        self._maybe_fail(stream=False)
        dimensions = request.dimensions or self.config.embedding_dimensions
        payload, tokens = responses.embeddings(request, dimensions)
        self.metrics.prompt_tokens.inc(tokens)
        await self._send(send, 200, orjson.dumps(payload))
        return 200

    async def _generate(
        self, request: GenerationRequest, chat: bool, receive: Receive, send: Send
    ) -> int:
        self._check_model(request.model)
        abort = self._maybe_fail(stream=request.stream)
        choices = self._plan(request)
        self.metrics.prompt_tokens.inc(request.prompt_tokens)
        if not self._paced:
            return await self._answer(request, chat, choices, send, abort)
        # A client that goes away stops the generation: the watcher cancels this task.
        disconnect = Disconnect()
        current = asyncio.current_task()
        assert current is not None  # noqa: S101 (always inside a task under an ASGI server)
        watcher = asyncio.get_running_loop().create_task(
            self._watch_disconnect(receive, current, disconnect)
        )
        try:
            return await self._answer(request, chat, choices, send, abort)
        except asyncio.CancelledError:
            if not disconnect.seen:
                raise
            current.uncancel()
            self.metrics.disconnects.inc()
            return CLIENT_GONE
        finally:
            watcher.cancel()

    async def _answer(
        self,
        request: GenerationRequest,
        chat: bool,
        choices: list[Choice],
        send: Send,
        abort: bool,
    ) -> int:
        if request.stream:
            await self._stream(request, chat, choices, send, abort)
        else:
            await self._complete(request, chat, choices, send)
        return 200

    async def _complete(
        self, request: GenerationRequest, chat: bool, choices: list[Choice], send: Send
    ) -> None:
        if self._paced:
            steps = max(len(choice.pieces) for choice in choices)
            delay = self._ttft() + sum(self._itl() for _ in range(steps - 1))
            await asyncio.sleep(delay)
        build = responses.chat_completion if chat else responses.text_completion
        created = int(time.time())
        payload = build(request.model, created, choices, request.prompt_tokens)
        self.metrics.completion_tokens.inc(payload["usage"]["completion_tokens"])
        await self._send(send, 200, orjson.dumps(payload))

    async def _stream(
        self,
        request: GenerationRequest,
        chat: bool,
        choices: list[Choice],
        send: Send,
        abort: bool,
    ) -> None:
        encoder = ChunkEncoder(chat, request.model, int(time.time()), request.include_usage)
        started = time.perf_counter()
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        loop = asyncio.get_running_loop()
        due = loop.time() + self._ttft()
        steps = max(len(choice.pieces) for choice in choices)
        abort_at = steps // 2 if abort else -1
        pending: list[bytes] = []
        produced = 0
        for step in range(steps):
            if step == abort_at:
                if pending:
                    await send(
                        {"type": "http.response.body", "body": b"".join(pending), "more_body": True}
                    )
                self.metrics.record_failure("abort")
                raise SimulatedAbort
            if self._paced:
                if step:
                    due += self._itl()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            produced += self._step(encoder, choices, step, pending)
            if step == 0:
                self.metrics.time_to_first_token.observe(time.perf_counter() - started)
            # Unpaced, there is no pace to show: the chunks leave together at the end.
            if self._paced:
                await send(
                    {"type": "http.response.body", "body": b"".join(pending), "more_body": True}
                )
                pending.clear()
                self.metrics.completion_tokens.inc(produced)
                produced = 0
        if request.include_usage:
            total = sum(len(choice.pieces) for choice in choices)
            pending.append(encoder.usage(request.prompt_tokens, total))
        pending.append(responses.DONE)
        self.metrics.completion_tokens.inc(produced)
        await send({"type": "http.response.body", "body": b"".join(pending), "more_body": False})

    @staticmethod
    def _step(encoder: ChunkEncoder, choices: list[Choice], step: int, out: list[bytes]) -> int:
        """Appends each choice's chunks for this step; returns how many tokens they carry."""
        produced = 0
        for choice in choices:
            if step == 0 and encoder.chat:
                out.append(encoder.role(choice.index))
            if step < len(choice.pieces):
                out.append(encoder.piece(choice.index, choice.pieces[step]))
                produced += 1
                if step + 1 == len(choice.pieces):
                    out.append(encoder.finish(choice.index, choice.finish_reason))
        return produced

    # --- rules ----------------------------------------------------------------------------------

    def _check_model(self, model: str) -> None:
        if self._models and model not in self._models:
            raise model_not_found(model)

    def _maybe_fail(self, stream: bool) -> bool:
        """Raises the simulated 500, or returns True when this stream is to be cut mid-way."""
        rate = self.config.failure_rate
        if not rate or self._rng.random() >= rate:
            return False
        if stream and self.config.failure_mode is FailureMode.ABORT:
            return True
        self.metrics.record_failure("error")
        raise simulated_failure()

    def _plan(self, request: GenerationRequest) -> list[Choice]:
        config = self.config
        low, high = config.output_tokens_min, config.output_tokens_max
        seed = request.seed if request.seed is not None else config.seed
        choices: list[Choice] = []
        for prompt in request.prompts:
            for _ in range(request.n):
                index = len(choices)
                rng = (
                    self._rng if seed is None else self._seeded(seed, request.model, index, prompt)
                )
                target = low if low == high else low + int(rng.random() * (high - low + 1))
                count, reason = target, "stop"
                if request.max_tokens is not None and (
                    request.ignore_eos or request.max_tokens < target
                ):
                    count, reason = request.max_tokens, "length"
                pieces = generate(config.text_source, rng, count, prompt.text)
                choices.append(Choice(index, pieces, reason))
        return choices

    @staticmethod
    def _seeded(seed: int, model: str, index: int, prompt: Prompt) -> random.Random:
        # The same seed, model, choice and prompt give the same text, whatever the order of
        # requests, streamed or not; a smaller max_tokens gives a prefix of it.
        return random.Random(f"{seed}\x00{model}\x00{index}\x00{prompt.tokens}\x00{prompt.text}")  # noqa: S311

    def _ttft(self) -> float:
        return self._jittered(self.config.ttft_ms, self.config.ttft_jitter_ms)

    def _itl(self) -> float:
        return self._jittered(self.config.itl_ms, self.config.itl_jitter_ms)

    def _jittered(self, base_ms: float, jitter_ms: float) -> float:
        """Seconds, uniform in [base - jitter, base + jitter], never negative."""
        if jitter_ms:
            base_ms += (self._rng.random() * 2 - 1) * jitter_ms
        return max(base_ms, 0.0) / 1000

    # --- plumbing -------------------------------------------------------------------------------

    async def _json_body(self, receive: Receive) -> dict[str, Any]:
        limit = self.config.max_request_bytes
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        raw: bytes = message.get("body", b"")
        if message.get("more_body", False):
            parts = [raw]
            size = len(raw)
            while message.get("more_body", False):
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                parts.append(message.get("body", b""))
                size += len(parts[-1])
                if size > limit:
                    break
            raw = b"".join(parts)
        if len(raw) > limit:
            raise ApiError(413, f"The request body is larger than {limit} bytes.")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise bad_request(f"The request body is not valid JSON: {error}") from None
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        return body

    @staticmethod
    async def _watch_disconnect(
        receive: Receive, task: asyncio.Task[Any], disconnect: Disconnect
    ) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnect.seen = True
        task.cancel()

    @staticmethod
    async def _send(
        send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*(headers or JSON_HEADERS), (b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _error(self, send: Send, error: ApiError) -> None:
        headers = [*JSON_HEADERS, *error.headers]
        await self._send(send, error.status, error.body(), headers)

    @staticmethod
    def _model_card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": STARTED, "owned_by": "budapp-sim"}

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                quiet_simulated_aborts()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


class _DropSimulatedAborts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], SimulatedAbort))


def quiet_simulated_aborts() -> None:
    """uvicorn logs every exception that ends a response; a planned abort is not an error."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropSimulatedAborts) for f in logger.filters):
        logger.addFilter(_DropSimulatedAborts())


def create_app(config: SimConfig | None = None) -> SimApp:
    return SimApp(config or SimConfig())
