"""An ASGI response that relays an async iterator of bytes and stops it as soon as the client
goes away: the iterator is cancelled where it waits (on the backend) and closed, so its
cleanup (closing the backend request, metering the partial usage) runs at once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from starlette.types import Receive, Scope, Send


class RelayResponse:
    def __init__(
        self, body: AsyncIterator[bytes], headers: list[tuple[bytes, bytes]], status: int = 200
    ) -> None:
        self.body = body
        self.headers = headers
        self.status = status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        del scope
        try:
            async with anyio.create_task_group() as group:

                async def relay() -> None:
                    try:
                        await send(
                            {
                                "type": "http.response.start",
                                "status": self.status,
                                "headers": self.headers,
                            }
                        )
                        async for chunk in self.body:
                            await send(
                                {"type": "http.response.body", "body": chunk, "more_body": True}
                            )
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                    except OSError:
                        pass  # the client is gone; its disconnect message ends the watch
                    group.cancel_scope.cancel()

                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(relay)
                group.start_soon(watch)
        finally:
            aclose = getattr(self.body, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
