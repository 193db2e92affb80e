"""What a hosted provider's adapter does for the gateway: build the upstream request from the
OpenAI-shaped one, and (for providers that answer in another shape) translate the answer and
the stream back. OpenAI-compatible targets have no adapter: their bodies pass as they are."""

from __future__ import annotations

from typing import Any, ClassVar

from budapp.gateway.errors import GatewayError


def unsupported(message: str, param: str | None = None) -> GatewayError:
    """A request this provider cannot take: a 400, and the router tries its other targets."""
    return GatewayError(400, message, param=param, code="unsupported_by_provider")


class StreamTranslator:
    """Turns a provider's event stream, read by read (events may be split across reads), into
    OpenAI's `chat.completion.chunk` events, each ending with a blank line."""

    def __init__(self) -> None:
        # The stream reported an error, or broke off: the call is metered as failed.
        self.failed = False
        self.closed = False
        # Why, when it failed: a fallback reason ("5xx", "429") and the provider's message.
        self.failure: tuple[str, str] = ("5xx", "The provider's stream failed")

    def fail(self, reason: str, message: str) -> None:
        self.failed = True
        self.failure = (reason, message)

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        """The provider closed the stream: whatever is still owed to the client (once)."""
        if self.closed:
            return b""
        self.closed = True
        return self.finish()

    def finish(self) -> bytes:
        raise NotImplementedError


class Provider:
    # Answers come back in another shape and are translated to OpenAI's.
    translates: ClassVar[bool] = False

    def request(self, route: str, base_url: str, payload: dict[str, Any]) -> tuple[str, bytes]:
        """The upstream URL and body for an OpenAI-shaped `payload` (the gateway's own copy,
        with `model` set to the target's) sent to `/v1/{route}`. Raises the error of
        `unsupported` for a request the provider cannot take."""
        raise NotImplementedError

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """A successful non-streamed answer in OpenAI's shape; ValueError if it is not one
        of the provider's answers."""
        return body

    def stream(self) -> StreamTranslator | None:
        return None
