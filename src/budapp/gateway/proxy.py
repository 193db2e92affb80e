"""The gateway's request path: authenticate the key (memory), find the router (memory), admit
the request under its limits (one counter round trip), try targets in the router's order
with fallback, relay the answer (streams event by event) and meter the call (a list append)."""

from __future__ import annotations

import asyncio
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
from budapp.core.components import Key
from budapp.core.db import utcnow
from budapp.core.errors import BudappError
from budapp.gateway import metrics
from budapp.gateway.admission import (
    budgets_for,
    rate_headers,
    rate_limited,
    read_payload,
    reservation,
)
from budapp.gateway.answer_usage import answer_usage, content_chars, stream_usage, take_usage
from budapp.gateway.balancer import candidates, cool_down
from budapp.gateway.errors import (
    GatewayError,
    bad_request,
    model_not_found,
    unauthorized,
    unavailable,
    upstream_failed,
)
from budapp.gateway.failures import (
    UpstreamFailure,
    refusal,
    timed_out,
    unreachable,
    upstream_refused,
)
from budapp.gateway.providers import StreamTranslator
from budapp.gateway.routing import ProjectConfig, RouterConfig, RoutingCache, TargetState
from budapp.gateway.streaming import RelayResponse
from budapp.gateway.targets import TargetResolver
from budapp.usage.meter import Call, UsageMeter

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
        payload = await read_payload(request, self.max_body_bytes)
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
        budgets = budgets_for(call.identity, config)
        if budgets:
            token_keys = [b.key for b in budgets if b.kind == "tokens"]
            reserve = reservation(payload, call.route) if token_keys else 0
            outcome = await self._acquire(budgets, reserve)
            call.headers = rate_headers(budgets, outcome)
            if not outcome.allowed:
                raise rate_limited(budgets, outcome, call.headers)
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
            except UpstreamFailure as failure:
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
                call.reserved = reservation(call.payload, call.route)
        outcome = await self._acquire(budgets, call.reserved if target.tpm else 0)
        if not outcome.allowed:
            return rate_limited(budgets, outcome, {})
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
            raise UpstreamFailure("timeout", timed_out(target)) from None
        except aiohttp.ClientError as exc:
            target.in_flight -= 1
            raise UpstreamFailure("connect_error", unreachable(exc)) from None
        try:
            if response.status != 200:
                raise await refusal(response)
            if call.stream:
                relay = await self._relay(call, target, response, sent, upstream.strip_usage)
                relayed = True
                return relay
            body = await response.read()
        except TimeoutError:
            raise UpstreamFailure("timeout", timed_out(target)) from None
        except aiohttp.ClientError as exc:
            raise UpstreamFailure(
                "5xx", upstream_failed(f"The backend broke off: {exc!r}")
            ) from None
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
            raise UpstreamFailure(
                "5xx", upstream_failed("The backend answered with something that is not JSON")
            ) from None
        target.observe(time.perf_counter() - sent)
        prompt, completion, estimated = answer_usage(parsed.get("usage"), call.payload, parsed)
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
                raise upstream_refused(*translator.failure)
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
                        ready, found = take_usage(ready, strip_usage)
                        usage = found or usage
                    completion_chars += content_chars(ready)
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
            prompt, completion, estimated = stream_usage(usage, call.payload, completion_chars)
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


# --- helpers ---------------------------------------------------------------------------------


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "budapp"}


GATEWAY: Key[Gateway] = Key("gateway")
