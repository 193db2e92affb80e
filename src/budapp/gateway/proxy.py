"""The gateway's request path: authenticate the key (memory), find the router (memory), admit
the request under its limits (one counter round trip), try targets in the router's order
with fallback, relay the answer (streams event by event) and meter the call (a list append)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from starlette.requests import Request
from starlette.responses import Response

from budapp.adapters.ratelimit import Budget, Outcome, RateLimiter
from budapp.adapters.ratelimit.base import window_of
from budapp.api_keys.resolver import ApiKeyIdentity, ApiKeyResolver
from budapp.core.db import utcnow
from budapp.core.errors import BudappError
from budapp.gateway import metrics, tokens
from budapp.gateway.balancer import candidates, cool_down
from budapp.gateway.config import ProjectConfig, RouterConfig, RoutingCache, TargetState
from budapp.gateway.errors import (
    GatewayError,
    bad_request,
    model_not_found,
    unauthorized,
    unavailable,
    upstream_failed,
)
from budapp.gateway.meter import Call, UsageMeter
from budapp.gateway.providers import StreamTranslator
from budapp.gateway.streaming import RelayResponse
from budapp.gateway.targets import TargetResolver

WINDOW_SECONDS = 60
_JSON = {"content-type": "application/json"}
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


@dataclass(slots=True)
class _Call:
    identity: ApiKeyIdentity
    route: str
    model: str
    started: float
    stream: bool = False
    router: RouterConfig | None = None
    target: TargetState | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    token_keys: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    # Tokens reserved at admission in `window` (on token_keys, and on target_token_key for
    # the target being tried), corrected to the real usage when the call ends.
    reserved: int = 0
    window: int = 0
    target_token_key: str | None = None


@dataclass(slots=True)
class _Upstream:
    url: str
    body: bytes
    # The client did not ask for the usage chunk that the gateway asked for (to meter).
    strip_usage: bool


class _Failure(Exception):
    """One attempt at a target failed; `reason` is what `fallback_on` names."""

    def __init__(self, reason: str, error: GatewayError) -> None:
        super().__init__(error.message)
        self.reason = reason
        self.error = error


class Gateway:
    def __init__(
        self,
        *,
        keys: ApiKeyResolver,
        routing: RoutingCache,
        limiter: RateLimiter,
        meter: UsageMeter,
        targets: TargetResolver,
        client: aiohttp.ClientSession,
        max_body_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.keys = keys
        self.routing = routing
        self.limiter = limiter
        self.meter = meter
        self.targets = targets
        self.client = client
        self._background: set[asyncio.Task[None]] = set()

    # --- routes ------------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response | RelayResponse:
        return await self._generate(request, "chat/completions")

    async def completions(self, request: Request) -> Response | RelayResponse:
        return await self._generate(request, "completions")

    async def embeddings(self, request: Request) -> Response | RelayResponse:
        return await self._generate(request, "embeddings")

    async def models(self, request: Request) -> Response:
        try:
            identity = await self._identity(request)
            config = await self._config(identity)
        except GatewayError as exc:
            return exc.response()
        wanted = request.path_params.get("model")
        listed = [_model(name) for name in sorted(config.routers) if wanted in (None, name)]
        if wanted is not None:
            if not listed:
                return model_not_found(wanted).response()
            return Response(orjson.dumps(listed[0]), headers=_JSON)
        return Response(orjson.dumps({"object": "list", "data": listed}), headers=_JSON)

    # --- the request path --------------------------------------------------------------------

    async def _generate(self, request: Request, route: str) -> Response | RelayResponse:
        started = time.perf_counter()
        try:
            identity = await self._identity(request)
        except GatewayError as exc:
            return exc.response()
        call = _Call(identity, route, "", started)
        try:
            await self._admit(request, call)
            return await self._forward(call)
        except GatewayError as exc:
            self._finish(call, exc.status, None, None)
            response = exc.response()
            response.headers.update(call.headers)
            return response

    async def _identity(self, request: Request) -> ApiKeyIdentity:
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, raw = header.partition(" ")
            if scheme.lower() != "bearer":
                raise unauthorized("Use `Authorization: Bearer <API key>`")
        else:
            raw = request.headers.get("x-api-key", "")
        if not raw:
            raise unauthorized("An API key is required: `Authorization: Bearer <API key>`")
        try:
            return await self.keys.resolve(raw.strip())
        except BudappError as exc:
            raise unauthorized(exc.message) from None

    async def _config(self, identity: ApiKeyIdentity) -> ProjectConfig:
        try:
            return await self.routing.get(identity.project_id, identity.organization_id)
        except Exception as exc:
            raise unavailable("The gateway's configuration is unavailable") from exc

    async def _admit(self, request: Request, call: _Call) -> None:
        payload = await _payload(request, self.max_body_bytes)
        call.payload = payload
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise bad_request(
                "`model` is required: the name of one of the project's routers", "model"
            )
        call.model = model
        stream = payload.get("stream", False)
        if stream is not None and not isinstance(stream, bool):
            raise bad_request("`stream` must be a boolean", "stream")
        call.stream = bool(stream) and call.route != "embeddings"
        config = await self._config(call.identity)
        router = config.routers.get(model)
        if router is None:
            raise model_not_found(model)
        call.router = router
        budgets = _budgets(call.identity, config)
        if budgets:
            token_keys = [b.key for b in budgets if b.kind == "tokens"]
            reserve = _reservation(payload, call.route) if token_keys else 0
            outcome = await self._acquire(budgets, reserve)
            call.headers = _rate_headers(budgets, outcome)
            if not outcome.allowed:
                raise _limited(budgets, outcome, call.headers)
            call.token_keys, call.reserved, call.window = token_keys, reserve, outcome.window

    async def _forward(self, call: _Call) -> Response | RelayResponse:
        router = call.router
        assert router is not None  # noqa: S101 - set by _admit
        attempts = 0
        last: GatewayError | None = None
        for target in candidates(router):
            if attempts >= router.max_attempts:
                break
            base_url = self._base_url(target)
            if base_url is None:
                continue
            try:
                upstream = self._prepare(call, target, base_url)
            except GatewayError as unsupported:
                # This target's provider cannot take the request: another target may.
                last = unsupported
                continue
            if target.rpm or target.tpm:
                refusal = await self._target_budget(call, router, target)
                if refusal is not None:
                    last = refusal
                    continue
            attempts += 1
            call.target = target
            try:
                return await self._attempt(call, target, upstream)
            except _Failure as failure:
                self._release_target_tokens(call)
                metrics.UPSTREAM_FAILURES.labels(router.name, failure.reason).inc()
                if failure.reason != "client_error":
                    cool_down(router, target)
                last = failure.error
                if failure.reason not in router.fallback_on:
                    break
        if last is not None:
            raise last
        raise unavailable(f"No target of router {router.name!r} is available")

    def _base_url(self, target: TargetState) -> str | None:
        if target.base_url is not None:
            return target.base_url
        assert target.endpoint_id is not None  # noqa: S101 - an endpoint target
        replicas = self.targets.replicas(target.endpoint_id)
        if not replicas:
            return None
        target.replica_turn += 1
        return replicas[target.replica_turn % len(replicas)]

    async def _target_budget(
        self, call: _Call, router: RouterConfig, target: TargetState
    ) -> GatewayError | None:
        budgets = []
        if target.rpm:
            budgets.append(Budget(f"t:{router.id}:{target.label}:r", target.rpm, "requests"))
        token_key = f"t:{router.id}:{target.label}:t"
        if target.tpm:
            budgets.append(Budget(token_key, target.tpm, "tokens"))
            if not call.token_keys:  # else reserved at admission already
                call.reserved = _reservation(call.payload, call.route)
        outcome = await self._acquire(budgets, call.reserved if target.tpm else 0)
        if not outcome.allowed:
            return _limited(budgets, outcome, {})
        if target.tpm:
            call.target_token_key, call.window = token_key, outcome.window
        return None

    def _release_target_tokens(self, call: _Call) -> None:
        """A failed attempt gives its target's token reservation back."""
        if call.target_token_key is not None:
            self._spend([call.target_token_key], -call.reserved, call.window)
            call.target_token_key = None

    async def _acquire(self, budgets: list[Budget], tokens: int = 0) -> Outcome:
        try:
            return await self.limiter.acquire(budgets, WINDOW_SECONDS, tokens)
        except BudappError as exc:
            # Redis unreachable: refuse rather than serve unlimited.
            raise GatewayError(503, exc.message, type_="service_unavailable") from None

    def _prepare(self, call: _Call, target: TargetState, base_url: str) -> _Upstream:
        payload = dict(call.payload)
        payload["model"] = target.model
        if target.served_model and target.endpoint_id is not None:
            payload["model"] = self.targets.served_model(target.endpoint_id) or target.model
        strip_usage = False
        if call.stream:
            options = payload.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            if not options.get("include_usage"):
                # Ask for the usage chunk to meter the stream; the client, who did not ask,
                # does not get it.
                options["include_usage"] = True
                strip_usage = True
            payload["stream_options"] = options
        if target.provider is None:
            return _Upstream(f"{base_url}/{call.route}", orjson.dumps(payload), strip_usage)
        url, body = target.provider.request(call.route, base_url, payload)
        return _Upstream(url, body, strip_usage)

    async def _attempt(
        self, call: _Call, target: TargetState, upstream: _Upstream
    ) -> Response | RelayResponse:
        target.in_flight += 1
        sent = time.perf_counter()
        relayed = False
        try:
            response = await self.client.post(
                upstream.url,
                data=upstream.body,
                headers=target.headers,
                timeout=aiohttp.ClientTimeout(
                    connect=min(target.timeout, 5.0), sock_read=target.timeout
                ),
            )
        except TimeoutError:
            target.in_flight -= 1
            raise _Failure("timeout", _timeout(target)) from None
        except aiohttp.ClientError as exc:
            target.in_flight -= 1
            raise _Failure("connect_error", _unreachable(exc)) from None
        try:
            if response.status != 200:
                raise await _refused(response)
            if call.stream:
                relay = await self._relay(call, target, response, sent, upstream.strip_usage)
                relayed = True
                return relay
            body = await response.read()
        except TimeoutError:
            raise _Failure("timeout", _timeout(target)) from None
        except aiohttp.ClientError as exc:
            raise _Failure("5xx", upstream_failed(f"The backend broke off: {exc!r}")) from None
        finally:
            # A relayed stream owns the response (and the in-flight count) until it ends.
            if not relayed:
                target.in_flight -= 1
                response.release()
        return self._answer(call, target, body, sent)

    def _answer(self, call: _Call, target: TargetState, body: bytes, sent: float) -> Response:
        try:
            parsed = orjson.loads(body)
            if not isinstance(parsed, dict):
                raise TypeError
            if target.provider is not None and target.provider.translates:
                parsed = target.provider.answer(parsed)
                body = orjson.dumps(parsed)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            raise _Failure(
                "5xx", upstream_failed("The backend answered with something that is not JSON")
            ) from None
        target.observe(time.perf_counter() - sent)
        prompt, completion, estimated = _usage(parsed.get("usage"), call.payload, parsed)
        self._finish(call, 200, (prompt, completion, estimated), None)
        return Response(body, headers={**_JSON, **call.headers})

    async def _relay(
        self,
        call: _Call,
        target: TargetState,
        response: aiohttp.ClientResponse,
        sent: float,
        strip_usage: bool,
    ) -> RelayResponse:
        # Wait for the first bytes here, while falling back is still possible.
        first = await response.content.readany()
        first_at = time.perf_counter()
        translator = target.provider.stream() if target.provider is not None else None
        if translator is not None:
            first = translator.feed(first) if first else translator.close()
            if translator.failed:
                # Nothing has reached the client yet: this may still fall back.
                raise _upstream_refused(*translator.failure)
        headers = _SSE_HEADERS + [(k.encode(), v.encode()) for k, v in call.headers.items()]
        body = self._events(
            call,
            target,
            response=response,
            first=first,
            first_at=first_at,
            sent=sent,
            strip_usage=strip_usage,
            translator=translator,
        )
        return RelayResponse(body, headers)

    async def _events(
        self,
        call: _Call,
        target: TargetState,
        *,
        response: aiohttp.ClientResponse,
        first: bytes,
        first_at: float,
        sent: float,
        strip_usage: bool,
        translator: StreamTranslator | None,
    ) -> AsyncIterator[bytes]:
        status = 499
        usage: dict[str, Any] | None = None
        completion_chars = 0
        pending = first
        finished = False
        try:
            while True:
                # Relay whole events as they complete: one backend event, one client event.
                end = pending.rfind(b"\n\n")
                if end >= 0:
                    ready, pending = pending[: end + 2], pending[end + 2 :]
                    if b'"usage"' in ready:
                        ready, found = _take_usage(ready, strip_usage)
                        usage = found or usage
                    completion_chars += _content_chars(ready)
                    if ready:
                        yield ready
                chunk = await response.content.readany()
                if translator is not None and not translator.closed:
                    # Translated: `pending` only ever holds whole OpenAI events.
                    pending += translator.feed(chunk) if chunk else translator.close()
                    continue
                if not chunk:
                    break
                pending += chunk
            finished = True
            if pending:
                yield pending
            status = 502 if translator is not None and translator.failed else 200
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = 502
            error = {
                "error": {
                    "message": f"The backend broke off the stream: {exc!r}",
                    "type": "api_error",
                    "param": None,
                    "code": "upstream_error",
                }
            }
            yield b"data: " + orjson.dumps(error) + b"\n\n"
        finally:
            target.in_flight -= 1
            if finished:
                response.release()
            else:
                # Cancelled or broken: drop the connection, which also tells the backend.
                response.close()
            if status == 200:
                target.observe(time.perf_counter() - sent)
            prompt, completion, estimated = _stream_usage(usage, call.payload, completion_chars)
            self._finish(call, status, (prompt, completion, estimated), first_at)

    # --- metering ----------------------------------------------------------------------------

    def _finish(
        self,
        call: _Call,
        status: int,
        usage: tuple[int, int, bool] | None,
        first_at: float | None,
    ) -> None:
        now = time.perf_counter()
        prompt, completion, estimated = usage or (0, 0, False)
        router = call.router
        target = call.target
        name = router.name if router is not None else call.model
        ttft = (first_at - call.started) * 1000 if first_at is not None else None
        self.meter.record(
            Call(
                at=utcnow(),
                organization_id=call.identity.organization_id,
                project_id=call.identity.project_id,
                api_key_id=call.identity.key_id,
                user_id=call.identity.created_by,
                router_id=router.id if router is not None else None,
                router=name[:128],
                target=target.label[:512] if target is not None else None,
                endpoint_id=target.endpoint_id if target is not None else None,
                model=(target.model if target is not None else call.model)[:255],
                route=call.route,
                stream=call.stream,
                status=status,
                prompt_tokens=prompt,
                completion_tokens=completion,
                estimated=estimated,
                latency_ms=(now - call.started) * 1000,
                ttft_ms=ttft,
            )
        )
        label = name if router is not None else ""
        metrics.REQUESTS.labels(call.route, label, str(status)).inc()
        metrics.LATENCY.labels(call.route, label).observe(now - call.started)
        if status >= 400:
            metrics.ERRORS.labels(call.route, str(status)).inc()
        if ttft is not None:
            metrics.TTFT.labels(call.route, label).observe(ttft / 1000)
        if prompt or completion:
            metrics.TOKENS.labels(label, "prompt").inc(prompt)
            metrics.TOKENS.labels(label, "completion").inc(completion)
        self._charge(call, prompt + completion)

    def _charge(self, call: _Call, spent: int) -> None:
        """Corrects the tokens reserved at admission to what the call really used, in the
        window it was admitted in; when that window is over, only what exceeded the
        reservation is charged, to the current one."""
        keys = list(call.token_keys)
        if call.target_token_key is not None:
            keys.append(call.target_token_key)
        if not keys or spent == call.reserved:
            return
        if window_of(WINDOW_SECONDS)[0] == call.window:
            self._spend(keys, spent - call.reserved, call.window)
        elif spent > call.reserved:
            self._spend(keys, spent - call.reserved, None)

    def _spend(self, keys: list[str], tokens: int, window: int | None) -> None:
        task = asyncio.get_running_loop().create_task(
            self.limiter.spend(keys, tokens, WINDOW_SECONDS, window)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


# --- helpers of the request path ---------------------------------------------------------------


async def _payload(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise _too_large(limit)
    body = bytes(received)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("The request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise bad_request("The request body must be a JSON object")
    return payload


def _reservation(payload: dict[str, Any], route: str) -> int:
    """What a call may spend, taken from the token budgets when it is admitted: its prompt
    (estimated) and the completion it allows (`max_tokens` times `n`). Calls in flight so hold
    their share, and a budget can be overshot only by the call admitted last (and by
    completions of calls that set no `max_tokens`)."""
    prompt = tokens.estimate(tokens.prompt_length(payload))
    if route == "embeddings":
        return prompt
    ceiling = payload.get("max_completion_tokens") or payload.get("max_tokens")
    choices = payload.get("n")
    completion = ceiling if isinstance(ceiling, int) and ceiling > 0 else 0
    return prompt + completion * (choices if isinstance(choices, int) and 0 < choices <= 128 else 1)


def _too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"The request body is larger than {limit} bytes", code="too_large")


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "budapp"}


def _budgets(identity: ApiKeyIdentity, config: ProjectConfig) -> list[Budget]:
    budgets = []
    if config.key_rpm:
        budgets.append(Budget(f"k:{identity.key_id}:r", config.key_rpm, "requests"))
    if config.key_tpm:
        budgets.append(Budget(f"k:{identity.key_id}:t", config.key_tpm, "tokens"))
    if config.rpm:
        budgets.append(Budget(f"p:{identity.project_id}:r", config.rpm, "requests"))
    if config.tpm:
        budgets.append(Budget(f"p:{identity.project_id}:t", config.tpm, "tokens"))
    return budgets


def _rate_headers(budgets: list[Budget], outcome: Outcome) -> dict[str, str]:
    """OpenAI's `x-ratelimit-*` headers, for the tightest request and token budget."""
    headers: dict[str, str] = {}
    reset = f"{max(outcome.resets_in, 0.001):.3f}s"
    for kind in ("requests", "tokens"):
        left = [
            (b.limit - count, b.limit)
            for b, count in zip(budgets, outcome.counts, strict=True)
            if b.kind == kind
        ]
        if left:
            remaining, limit = min(left)
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(max(remaining, 0))
            headers[f"x-ratelimit-reset-{kind}"] = reset
    return headers


def _limited(budgets: list[Budget], outcome: Outcome, headers: dict[str, str]) -> GatewayError:
    refused = budgets[outcome.refused or 0]
    scope = {"k": "API key", "p": "project", "t": "router target"}[refused.key[0]]
    unit = "requests" if refused.kind == "requests" else "tokens"
    return GatewayError(
        429,
        f"Rate limit reached: the {scope}'s limit of {refused.limit} {unit} per minute; "
        f"retry in {math.ceil(outcome.resets_in)} s",
        type_="requests" if unit == "requests" else "tokens",
        code="rate_limit_exceeded",
        headers={**headers, "retry-after": str(max(1, math.ceil(outcome.resets_in)))},
    )


def _timeout(target: TargetState) -> GatewayError:
    return GatewayError(
        504,
        f"The backend did not answer within {target.timeout:g} s",
        type_="timeout",
        code="upstream_timeout",
    )


def _unreachable(exc: aiohttp.ClientError) -> GatewayError:
    return upstream_failed(f"The backend cannot be reached: {type(exc).__name__}")


def _upstream_refused(reason: str, message: str, headers: dict[str, str] | None = None) -> _Failure:
    """An upstream refusal that may fall back: `429` (rate limited) or `5xx`."""
    if reason == "429":
        return _Failure(
            "429",
            GatewayError(
                429,
                message,
                type_="rate_limit_exceeded",
                code="upstream_rate_limited",
                headers=headers,
            ),
        )
    return _Failure("5xx", upstream_failed(message, 502))


async def _refused(response: aiohttp.ClientResponse) -> _Failure:
    """A non-200 answer as an attempt's failure: 5xx and 429 may fall back; other 4xx are the
    client's to fix and are passed on in OpenAI's shape."""
    body = await response.read()
    status = response.status
    message = f"The backend answered {status}"
    try:
        parsed = orjson.loads(body)
        error = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
        elif isinstance(error, str):
            message = error
    except orjson.JSONDecodeError:
        pass
    if status == 429:
        retry = response.headers.get("retry-after")
        return _upstream_refused("429", message, {"retry-after": retry} if retry else None)
    if status >= 500:
        return _upstream_refused("5xx", message)
    return _Failure("client_error", GatewayError(status, message, code="upstream_rejected"))


def _usage(usage: Any, payload: dict[str, Any], body: dict[str, Any]) -> tuple[int, int, bool]:
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        completion = usage.get("completion_tokens")
        return usage["prompt_tokens"], completion if isinstance(completion, int) else 0, False
    prompt = tokens.estimate(tokens.prompt_length(payload))
    return prompt, tokens.estimate(tokens.completion_length(body)), True


def _stream_usage(
    usage: dict[str, Any] | None, payload: dict[str, Any], completion_chars: int
) -> tuple[int, int, bool]:
    if usage is not None and isinstance(usage.get("prompt_tokens"), int):
        completion = usage.get("completion_tokens")
        return usage["prompt_tokens"], completion if isinstance(completion, int) else 0, False
    return tokens.estimate(tokens.prompt_length(payload)), tokens.estimate(completion_chars), True


def _take_usage(events: bytes, strip: bool) -> tuple[bytes, dict[str, Any] | None]:
    """Finds the usage in a run of events; drops the usage-only chunk the client did not ask for."""
    kept: list[bytes] = []
    usage = None
    for event in events.split(b"\n\n"):
        if not event:
            continue
        if b'"usage"' in event and event.startswith(b"data: {"):
            try:
                chunk = orjson.loads(event[6:])
            except orjson.JSONDecodeError:
                chunk = None
            if isinstance(chunk, dict) and isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
                if strip and not chunk.get("choices"):
                    continue
        kept.append(event + b"\n\n")
    return b"".join(kept), usage


def _content_chars(events: bytes) -> int:
    # Only for backends without usage: a rough count of the streamed text's characters.
    return events.count(b'"content":"') * 4 + events.count(b'"text":"') * 4
