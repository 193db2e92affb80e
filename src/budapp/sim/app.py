"""The simulator as a raw ASGI application: no framework between uvicorn and the handlers.

A load test of the gateway measures the gateway, so the simulator must cost as little as
possible per request: routes are a dict lookup, bodies are parsed with orjson and checked by
hand (protocol.py), and a stream's chunk envelope is encoded once (responses.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson

from budapp.sim import anthropic, responses
from budapp.sim.asgi import (
    JSON_HEADERS,
    SSE_HEADERS,
    ClientGone,
    Disconnect,
    Receive,
    Scope,
    Send,
    read_json_object,
    run_lifespan,
    send_body,
    send_error,
    watch_disconnect,
)
from budapp.sim.config import FailureMode, SimConfig
from budapp.sim.errors import (
    ApiError,
    SimulatedAbort,
    bad_request,
    model_not_found,
    simulated_failure,
    too_many_requests,
    unauthorized,
)
from budapp.sim.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from budapp.sim.metrics import SimMetrics
from budapp.sim.planning import Planner
from budapp.sim.protocol import GenerationRequest, parse_chat, parse_completion, parse_embedding
from budapp.sim.responses import Choice, ChunkEncoder

Handler = Callable[[dict[str, Any], Receive, Send], Awaitable[int]]
Encoder = ChunkEncoder | anthropic.MessagesEncoder

CLIENT_GONE = 499  # the status recorded for a request whose client went away (nginx's code)
ABORTED = 599  # recorded for a stream cut on purpose by the `abort` failure mode
STARTED = int(time.time())  # `created` of the listed models


def chunk_bounds(tokens: int, per_chunk: int) -> list[tuple[int, int]]:
    """The token ranges [start, end) of a stream's chunks: the first token alone (what
    prefill produces), then up to `per_chunk` tokens per chunk, as a server with speculative
    decoding or batched detokenisation sends them."""
    bounds = [(0, 1)]
    start = 1
    while start < tokens:
        bounds.append((start, min(start + per_chunk, tokens)))
        start += per_chunk
    return bounds


CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
MODELS = "/v1/models"
MESSAGES = "/v1/messages"  # Anthropic's Messages API
# Azure OpenAI: /openai/deployments/{deployment}/{route}?api-version=...
AZURE = "/openai/deployments/"
AZURE_ROUTES = ("chat/completions", "completions", "embeddings")


@dataclass(frozen=True, slots=True)
class Received:
    """A request as the simulator received it (kept when `record_requests` is set)."""

    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any]


class SimApp:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.metrics = SimMetrics()
        self.in_flight = 0
        self._planner = Planner(config)
        self._models = frozenset(config.models)
        self._models_body = orjson.dumps(
            {"object": "list", "data": [self._model_card(name) for name in config.listed_models]}
        )
        self._posts: dict[str, Handler] = {
            CHAT: self._chat,
            COMPLETIONS: self._completions,
            EMBEDDINGS: self._embeddings,
            MESSAGES: self._messages,
        }
        self._azure: dict[str, Handler] = dict(
            zip(AZURE_ROUTES, (self._chat, self._completions, self._embeddings), strict=True)
        )
        self.received: deque[Received] = deque(maxlen=config.record_requests or 1)
        delays = (config.ttft_ms, config.ttft_jitter_ms, config.itl_ms, config.itl_jitter_ms)
        self._paced = any(delay > 0 for delay in delays)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await run_lifespan(receive, send)

    # --- routing --------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        handler = self._posts.get(path)
        if handler is not None:
            if method == "POST":
                await self._generation_route(path, handler, scope, receive, send)
            else:
                await send_error(send, ApiError(405, f"Method {method} not allowed on {path}"))
            return
        if path.startswith(AZURE):
            await self._azure_route(path, method, scope, receive, send)
            return
        if method not in ("GET", "HEAD"):
            known = path in ("/health", "/metrics", MODELS) or path.startswith(MODELS + "/")
            status = 405 if known else 404
            message = (
                f"Method {method} not allowed on {path}" if known else f"Unknown route: {path}"
            )
            await send_error(send, ApiError(status, message))
        elif path == "/health":
            await send_body(send, 200, b'{"status":"ok"}')
        elif path == "/metrics":
            body = self.metrics.render()
            await send_body(send, 200, body, [(b"content-type", METRICS_CONTENT_TYPE.encode())])
        elif path == MODELS:
            await send_body(send, 200, self._models_body)
        elif path.startswith(MODELS + "/"):
            name = path[len(MODELS) + 1 :]
            if name in self.config.listed_models:
                await send_body(send, 200, orjson.dumps(self._model_card(name)))
            else:
                await send_error(send, model_not_found(name))
        else:
            await send_error(send, ApiError(404, f"Unknown route: {method} {path}", code=None))

    async def _azure_route(
        self, path: str, method: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        deployment, _, route = path[len(AZURE) :].partition("/")
        handler = self._azure.get(route)
        if not deployment or handler is None:
            await send_error(send, ApiError(404, f"Unknown route: {method} {path}", code=None))
            return
        if method != "POST":
            await send_error(send, ApiError(405, f"Method {method} not allowed on {path}"))
            return

        async def deployed(body: dict[str, Any], receive: Receive, send: Send) -> int:
            # Azure serves the deployment named in the path, whatever the body's `model`.
            return await handler({**body, "model": deployment}, receive, send)

        await self._generation_route(
            AZURE + "{deployment}/" + route, deployed, scope, receive, send
        )

    async def _generation_route(
        self, path: str, handler: Handler, scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = time.perf_counter()
        shape = anthropic.error_body if path == MESSAGES else ApiError.body
        limit = self.config.max_concurrency
        if limit and self.in_flight >= limit:
            await _send_error(send, too_many_requests(limit, self.config.retry_after_s), shape)
            self.metrics.record_request(path, 429, time.perf_counter() - started)
            return
        self.in_flight += 1
        self.metrics.in_flight.inc()
        status = 500
        try:
            self._check_request(path, scope)
            body = await read_json_object(receive, self.config.max_request_bytes)
            if self.config.record_requests:
                self._record(scope, body)
            status = await handler(body, receive, send)
        except ApiError as error:
            status = error.status
            await _send_error(send, error, shape)
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
        return await self._generate(request, CHAT, receive, send)

    async def _completions(self, body: dict[str, Any], receive: Receive, send: Send) -> int:
        request = parse_completion(body, self.config.max_choices)
        return await self._generate(request, COMPLETIONS, receive, send)

    async def _messages(self, body: dict[str, Any], receive: Receive, send: Send) -> int:
        parsed = anthropic.parse_messages(body)
        return await self._generate(
            parsed.generation,
            MESSAGES,
            receive,
            send,
            stops=parsed.stop_sequences,
            tool=parsed.tool,
        )

    async def _embeddings(self, body: dict[str, Any], _receive: Receive, send: Send) -> int:
        request = parse_embedding(body)
        self._check_model(request.model)
        self._maybe_fail(stream=False)
        dimensions = request.dimensions or self.config.embedding_dimensions
        payload, tokens = responses.embeddings(request, dimensions)
        self.metrics.prompt_tokens.inc(tokens)
        await send_body(send, 200, orjson.dumps(payload))
        return 200

    async def _generate(
        self,
        request: GenerationRequest,
        route: str,
        receive: Receive,
        send: Send,
        *,
        stops: list[str] | None = None,
        tool: anthropic.ToolCall | None = None,
    ) -> int:
        self._check_model(request.model)
        abort = self._maybe_fail(stream=request.stream)
        choices = self._planner.choices(request)
        stop = None
        if tool is not None:
            anthropic.call_tool(choices[0], tool)
        elif stops:
            stop = anthropic.apply_stop(choices[0], stops)
        self.metrics.prompt_tokens.inc(request.prompt_tokens)
        if not self._paced:
            return await self._answer(request, route, choices, send, abort, stop=stop, tool=tool)
        # A client that goes away stops the generation: the watcher cancels this task.
        disconnect = Disconnect()
        current = asyncio.current_task()
        assert current is not None  # noqa: S101 (always inside a task under an ASGI server)
        watcher = asyncio.get_running_loop().create_task(
            watch_disconnect(receive, current, disconnect)
        )
        try:
            return await self._answer(request, route, choices, send, abort, stop=stop, tool=tool)
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
        route: str,
        choices: list[Choice],
        send: Send,
        abort: bool,
        *,
        stop: str | None,
        tool: anthropic.ToolCall | None = None,
    ) -> int:
        if request.stream:
            encoder: Encoder
            if route == MESSAGES:
                encoder = anthropic.MessagesEncoder(
                    request.model, request.prompt_tokens, stop, tool
                )
            else:
                created = int(time.time())
                encoder = ChunkEncoder(route == CHAT, request.model, created, request.include_usage)
            await self._stream(request, encoder, choices, send, abort)
        else:
            await self._complete(request, route, choices, send, stop=stop, tool=tool)
        return 200

    async def _complete(
        self,
        request: GenerationRequest,
        route: str,
        choices: list[Choice],
        send: Send,
        *,
        stop: str | None,
        tool: anthropic.ToolCall | None = None,
    ) -> None:
        if self._paced:
            steps = max(len(choice.pieces) for choice in choices)
            delay = self._planner.ttft() + sum(self._planner.itl() for _ in range(steps - 1))
            await asyncio.sleep(delay)
        if route == MESSAGES:
            payload = anthropic.message(
                request.model, choices[0], request.prompt_tokens, stop, tool
            )
            self.metrics.completion_tokens.inc(payload["usage"]["output_tokens"])
        else:
            build = responses.chat_completion if route == CHAT else responses.text_completion
            created = int(time.time())
            payload = build(request.model, created, choices, request.prompt_tokens)
            self.metrics.completion_tokens.inc(payload["usage"]["completion_tokens"])
        await send_body(send, 200, orjson.dumps(payload))

    async def _stream(
        self,
        request: GenerationRequest,
        encoder: Encoder,
        choices: list[Choice],
        send: Send,
        abort: bool,
    ) -> None:
        started = time.perf_counter()
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        loop = asyncio.get_running_loop()
        due = loop.time() + self._planner.ttft()
        # A message cut to nothing by a stop sequence still has its start and its end.
        longest = max(1, *(len(choice.pieces) for choice in choices))
        chunks = chunk_bounds(longest, self.config.tokens_per_chunk)
        abort_at = len(chunks) // 2 if abort else -1
        pending: list[bytes] = []
        produced = 0
        for step, (start, end) in enumerate(chunks):
            if step == abort_at:
                if pending:
                    await send(
                        {"type": "http.response.body", "body": b"".join(pending), "more_body": True}
                    )
                self.metrics.record_failure("abort")
                raise SimulatedAbort
            if self._paced:
                gap = 0.0
                if step:
                    # A chunk of k tokens comes k inter-token latencies after the previous one:
                    # the pace per token is the ITL however the tokens are grouped.
                    gap = sum(self._planner.itl() for _ in range(end - start))
                    due += gap
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            produced += self._step(encoder, choices, start, end, pending)
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
                # A late chunk (a busy loop) does not make the next ones burst to catch up, as
                # from a runtime that is simply slower; lateness up to a quarter of the chunk's
                # gap (the timer's own, about a millisecond a sleep) is caught up, so that the
                # pace stays the ITL instead of ITL plus the timer's lateness.
                due = max(due, loop.time() - gap / 4)
        if request.include_usage:
            total = sum(len(choice.pieces) for choice in choices)
            pending.append(encoder.usage(request.prompt_tokens, total))
        pending.append(encoder.done)
        self.metrics.completion_tokens.inc(produced)
        await send({"type": "http.response.body", "body": b"".join(pending), "more_body": False})

    @staticmethod
    def _step(
        encoder: Encoder, choices: list[Choice], start: int, end: int, out: list[bytes]
    ) -> int:
        """Appends each choice's chunk of tokens [start, end); returns how many it carries."""
        produced = 0
        for choice in choices:
            if start == 0 and encoder.chat:
                out.append(encoder.role(choice.index))
            if start < len(choice.pieces):
                piece = choice.pieces[start:end]
                out.append(encoder.piece(choice.index, "".join(piece), len(piece)))
                produced += len(piece)
                if end >= len(choice.pieces):
                    out.append(encoder.finish(choice.index, choice.finish_reason))
            elif start == 0:
                out.append(encoder.finish(choice.index, choice.finish_reason))
        return produced

    # --- rules ----------------------------------------------------------------------------------

    def _check_request(self, path: str, scope: Scope) -> None:
        """The API key in the provider's header (when one is configured) and, for Anthropic,
        the `anthropic-version` header it requires."""
        headers = dict(scope["headers"])
        if path == MESSAGES and b"anthropic-version" not in headers:
            raise bad_request("anthropic-version: header is required")
        if path.startswith(AZURE) and "api-version" not in parse_qs(scope["query_string"].decode()):
            raise bad_request("Missing required query parameter: api-version", "api-version")
        key = self.config.api_key
        if key is None:
            return
        if path == MESSAGES:
            given, name = headers.get(b"x-api-key", b""), "x-api-key"
        elif path.startswith(AZURE):
            given, name = headers.get(b"api-key", b""), "api-key"
        else:
            given, name = (
                headers.get(b"authorization", b"").removeprefix(b"Bearer "),
                "authorization",
            )
        if given.decode(errors="replace") != key:
            raise unauthorized(f"Incorrect API key provided in the {name} header")

    def _record(self, scope: Scope, body: dict[str, Any]) -> None:
        headers = {k.decode(): v.decode(errors="replace") for k, v in scope["headers"]}
        query = scope["query_string"].decode()
        self.received.append(Received(scope["path"], query, headers, body))

    def _check_model(self, model: str) -> None:
        if self._models and model not in self._models:
            raise model_not_found(model)

    def _maybe_fail(self, stream: bool) -> bool:
        """Raises the simulated 500, or returns True when this stream is to be cut mid-way."""
        if not self._planner.fails():
            return False
        if stream and self.config.failure_mode is FailureMode.ABORT:
            return True
        self.metrics.record_failure("error")
        raise simulated_failure(self.config.failure_status)

    @staticmethod
    def _model_card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": STARTED, "owned_by": "budapp-sim"}


async def _send_error(send: Send, error: ApiError, shape: Callable[[ApiError], bytes]) -> None:
    await send_body(send, error.status, shape(error), [*JSON_HEADERS, *error.headers])


def create_app(config: SimConfig | None = None) -> SimApp:
    return SimApp(config or SimConfig())
