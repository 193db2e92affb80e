"""Every HTTP request a benchmark sends leaves through `open_client` (one place to put an
outbound-request policy), and user-given URLs pass `check_url` first: loopback, private and
link-local addresses are refused unless the operator allows them."""

from __future__ import annotations

import aiohttp

from budapp.webhooks.destinations import DestinationRefused, resolve


class TargetRefused(Exception):
    """A user-given URL that a benchmark may not call, or that does not answer."""


def open_client(connections: int, timeout_seconds: float) -> aiohttp.ClientSession:
    """The pooled client of one stage (or one probe). aiohttp rather than httpx: it sustains
    several times the request rate on the same core (benchmarks/RESULTS.md, load generator)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=30),
        timeout=aiohttp.ClientTimeout(
            total=timeout_seconds, sock_connect=min(10.0, timeout_seconds)
        ),
        skip_auto_headers=("User-Agent",),
        headers={"User-Agent": "budapp-bench"},
    )


async def check_url(url: str, *, allow_private: bool) -> None:
    try:
        await resolve(url, allow_private=allow_private)
    except DestinationRefused as exc:
        message = str(exc).replace(
            "BUDAPP_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS", "BUDAPP_BENCHMARK_ALLOW_PRIVATE_URLS"
        )
        raise TargetRefused(message) from None


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


async def probe(base_url: str, api_key: str | None, timeout_seconds: float = 5.0) -> None:
    """`GET <base_url>/models` answers (any status below 500 but 401/403 and 404 on the
    models list is fine: some servers have no list): the target is reachable and the key
    is accepted."""
    async with open_client(1, timeout_seconds) as client:
        try:
            async with client.get(f"{base_url}/models", headers=auth_headers(api_key)) as reply:
                status = reply.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TargetRefused(f"{base_url} is unreachable: {exc or type(exc).__name__}") from None
    if status in (401, 403):
        raise TargetRefused(f"{base_url} refused the credential (HTTP {status})")
    if status >= 500:
        raise TargetRefused(f"{base_url} answers HTTP {status}")
