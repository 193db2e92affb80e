"""Starts and stops what the gateway needs, from what the app already holds (database,
event bus, API-key resolver, credentials vault): in `budapp serve` and in `budapp gateway`."""

from __future__ import annotations

from typing import Any

import aiohttp

from budapp.adapters.ratelimit import create_rate_limiter
from budapp.gateway.config import RoutingCache
from budapp.gateway.meter import UsageMeter
from budapp.gateway.proxy import Gateway
from budapp.gateway.retention import UsageRetention
from budapp.gateway.targets import EndpointRegistry
from budapp.settings import Settings


async def start_gateway(state: Any, settings: Settings) -> None:
    if getattr(state, "target_resolver", None) is None:
        # Until the endpoints domain installs its own, endpoint targets have no replicas.
        state.target_resolver = EndpointRegistry()
    state.rate_limiter = create_rate_limiter(settings.redis_url)
    state.usage_meter = UsageMeter(
        state.session_factory,
        flush_seconds=settings.gateway_usage_flush_seconds,
        batch_size=settings.gateway_usage_batch_size,
        max_buffered=settings.gateway_usage_max_buffered,
    )
    await state.usage_meter.start()
    state.usage_retention = UsageRetention(
        state.session_factory, days=settings.usage_retention_days
    )
    await state.usage_retention.start()
    # One pooled client for every backend. aiohttp rather than httpx: on this path it costs
    # about a tenth of httpx's CPU per request (benchmarks/RESULTS.md, gateway section).
    state.gateway_client = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=settings.gateway_max_connections, keepalive_timeout=30, ttl_dns_cache=300
        ),
        # Streams are relayed as the backend sent them; upstream asks for identity encoding.
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )
    state.routing_cache = RoutingCache(
        state.session_factory,
        state.vault,
        state.event_bus,
        ttl_seconds=settings.gateway_config_ttl_seconds,
    )
    state.gateway = Gateway(
        keys=state.api_key_resolver,
        routing=state.routing_cache,
        limiter=state.rate_limiter,
        meter=state.usage_meter,
        targets=state.target_resolver,
        client=state.gateway_client,
        max_body_bytes=settings.gateway_max_request_bytes,
    )


async def stop_gateway(state: Any) -> None:
    """After the server stopped taking requests: what was metered is written, then closed."""
    await state.gateway.drain()
    await state.usage_retention.close()
    await state.usage_meter.close()
    await state.gateway_client.close()
    await state.rate_limiter.close()
