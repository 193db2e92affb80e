"""Upload routes get their own body limit, larger than management routes', enforced from
Content-Length before anything is read, and while streaming otherwise."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from budapp.core.middleware import BodySizeLimitMiddleware


async def _reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body; a failed read becomes a 400, as frameworks answer it."""
    size, status = 0, 200
    try:
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
    except Exception:
        status = 400
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


class Call:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.read = 0
        self.messages: list[Message] = []

    async def receive(self) -> Message:
        if not self.chunks:
            raise AssertionError("the body was read past its end")
        chunk = self.chunks.pop(0)
        self.read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

    async def send(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])


def scope(path: str, length: int | None = None, method: str = "POST") -> Scope:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return {"type": "http", "method": method, "path": path, "headers": headers}


@pytest.fixture
def limited() -> BodySizeLimitMiddleware:
    return BodySizeLimitMiddleware(
        _reading_app, max_bytes=1024, uploads=[(re.compile(r"^/upload$"), 10_000)]
    )


async def test_upload_route_accepts_more_than_the_management_limit(
    limited: BodySizeLimitMiddleware,
) -> None:
    call = Call([b"x" * 2000] * 2)
    await limited(scope("/upload", 4000), call.receive, call.send)
    assert call.status == 200


async def test_other_routes_keep_the_small_limit(limited: BodySizeLimitMiddleware) -> None:
    call = Call([b"x" * 2000])
    await limited(scope("/other"), call.receive, call.send)
    assert call.status == 413


async def test_declared_length_over_the_limit_is_refused_before_reading(
    limited: BodySizeLimitMiddleware,
) -> None:
    call = Call([b"x" * 100])
    await limited(scope("/upload", 20_000), call.receive, call.send)
    assert (call.status, call.read) == (413, 0)


async def test_streamed_body_is_cut_off_at_the_limit(limited: BodySizeLimitMiddleware) -> None:
    call = Call([b"x" * 4096] * 100)
    await limited(scope("/upload"), call.receive, call.send)
    assert call.status == 413
    assert call.read <= 10_000 + 4096


async def test_the_app_refuses_an_oversized_model_upload_unread(app: FastAPI) -> None:
    too_big = app.state.settings.model_upload_max_bytes + 1
    call = Call([])
    request: dict[str, Any] = {
        **scope("/models/local", too_big),
        "query_string": b"",
        "headers": [
            (b"content-length", str(too_big).encode()),
            (b"content-type", b"multipart/form-data; boundary=x"),
        ],
    }
    await app(request, call.receive, call.send)
    assert (call.status, call.read) == (413, 0)
    body = json.loads(call.messages[1]["body"])
    assert body["error"]["code"] == "PAYLOAD_TOO_LARGE"
