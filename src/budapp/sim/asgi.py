"""The ASGI plumbing the simulator needs, and nothing more: bodies in, JSON out, disconnects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from budapp.sim.errors import ApiError, SimulatedAbort, bad_request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


class ClientGone(Exception):
    """The client disconnected before its request body was read."""


@dataclass(slots=True)
class Disconnect:
    seen: bool = False


async def read_json_object(receive: Receive, limit: int) -> dict[str, Any]:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    raw: bytes = message.get("body", b"")
    if message.get("more_body", False):
        parts = [raw]
        size = len(raw)
        while message.get("more_body", False) and size <= limit:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            parts.append(message.get("body", b""))
            size += len(parts[-1])
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


async def send_body(
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


async def send_error(send: Send, error: ApiError) -> None:
    await send_body(send, error.status, error.body(), [*JSON_HEADERS, *error.headers])


async def watch_disconnect(receive: Receive, task: asyncio.Task[Any], seen: Disconnect) -> None:
    """Cancels `task` when the client goes away (the body has been read: only that can come)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    seen.seen = True
    task.cancel()


async def run_lifespan(receive: Receive, send: Send) -> None:
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
