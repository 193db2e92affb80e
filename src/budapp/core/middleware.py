"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request on the hot path)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from budapp.core.errors import PayloadTooLarge
from budapp.core.http import error_response
from budapp.core.logging import REQUEST_ID_HEADER, get_logger

# Accept a caller's id only if it is short and printable, so it cannot forge log lines.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

log = get_logger("budapp.access")


class RequestContextMiddleware:
    """Accepts `X-Request-ID` (or generates one), binds it to the log context, echoes it back,
    turns an unexpected exception into a 500 INTERNAL_ERROR envelope (no stack trace in the
    body), and writes one access-log line per request."""

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        # Each ASGI request runs in its own task, so these bindings cannot leak to another one.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if response_started or scope["type"] != "http":
                raise
            log.error("unhandled_exception", exc_info=exc)
            response = error_response(500, "INTERNAL_ERROR", "An unexpected error occurred")
            await response(scope, receive, send_with_id)
        finally:
            if self.access_log and scope["type"] == "http":
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            return candidate if _VALID_REQUEST_ID.match(candidate) else None
    return None


class BodySizeLimitMiddleware:
    """Refuses request bodies over `max_bytes` with 413: at once when Content-Length says so,
    else as soon as the streamed body passes the limit, so it is never read whole. Upload
    routes get larger limits of their own (`uploads`: path pattern -> bytes); a pattern mapped
    to None names routes that enforce a limit themselves, in their own error shape (the
    OpenAI-compatible gateway)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        uploads: Sequence[tuple[re.Pattern[str], int | None]] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads = list(uploads)

    def _limit(self, scope: Scope) -> int | None:
        if scope.get("method") in {"POST", "PUT"}:
            for pattern, limit in self.uploads:
                if pattern.match(scope["path"]):
                    return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self._limit(scope)
        if max_bytes is None:
            await self.app(scope, receive, send)
            return
        too_large = f"The request body exceeds {max_bytes} bytes"
        declared = _content_length(scope)
        if declared is not None and declared > max_bytes:
            await _refuse(scope, receive, send, too_large)
            return
        received = 0
        exceeded = False
        replaced = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    exceeded = True
                    raise PayloadTooLarge(too_large)
            return message

        async def guarded_send(message: Message) -> None:
            # The framework turns a failed body read into its own 400; answer 413 instead.
            nonlocal replaced
            if not exceeded:
                await send(message)
            elif not replaced and message["type"] == "http.response.start":
                replaced = True
                await _refuse(scope, receive, send, too_large)

        await self.app(scope, limited_receive, guarded_send)


async def _refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    response = error_response(413, PayloadTooLarge.code, message)
    await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
