"""How one attempt at a target fails: timeouts, unreachable backends and refusals, each with the
reason a router's `fallback_on` names and the OpenAI-shaped error the client gets if nothing
else answers."""

from __future__ import annotations

import aiohttp
import orjson

from budapp.gateway.errors import GatewayError, upstream_failed
from budapp.gateway.routing import TargetState


class UpstreamFailure(Exception):
    """One attempt at a target failed; `reason` is what `fallback_on` names."""

    def __init__(self, reason: str, error: GatewayError) -> None:
        super().__init__(error.message)
        self.reason = reason
        self.error = error


def timed_out(target: TargetState) -> GatewayError:
    return GatewayError(
        504,
        f"The backend did not answer within {target.timeout:g} s",
        type_="timeout",
        code="upstream_timeout",
    )


def unreachable(exc: aiohttp.ClientError) -> GatewayError:
    return upstream_failed(f"The backend cannot be reached: {type(exc).__name__}")


def upstream_refused(
    reason: str, message: str, headers: dict[str, str] | None = None
) -> UpstreamFailure:
    """An upstream refusal that may fall back: `429` (rate limited) or `5xx`."""
    if reason == "429":
        return UpstreamFailure(
            "429",
            GatewayError(
                429,
                message,
                type_="rate_limit_exceeded",
                code="upstream_rate_limited",
                headers=headers,
            ),
        )
    return UpstreamFailure("5xx", upstream_failed(message, 502))


async def refusal(response: aiohttp.ClientResponse) -> UpstreamFailure:
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
        return upstream_refused("429", message, {"retry-after": retry} if retry else None)
    if status >= 500:
        return upstream_refused("5xx", message)
    return UpstreamFailure("client_error", GatewayError(status, message, code="upstream_rejected"))
