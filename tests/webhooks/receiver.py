"""A real HTTP receiver on a loopback port: it records what it is sent and answers with the
statuses a test scripts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.live import serve


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    # Statuses answered in turn; the last one repeats.
    statuses: list[int] = field(default_factory=lambda: [200])
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    # A path that answers a redirect to another path.
    redirect: str | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append(Received(scope["path"], headers, body))
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        extra = (
            [(b"location", self.redirect.encode())] if self.redirect and 300 <= status < 400 else []
        )
        await send({"type": "http.response.start", "status": status, "headers": [*extra]})
        await send({"type": "http.response.body", "body": f"answer {status}".encode()})


@asynccontextmanager
async def receiving(*statuses: int) -> AsyncIterator[Receiver]:
    receiver = Receiver(statuses=list(statuses) or [200])
    async with serve(receiver) as address:
        receiver.url = f"http://{address}/hook"
        yield receiver
