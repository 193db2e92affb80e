"""Prometheus metrics of the gateway, on `/metrics` (the default registry, so one scrape
also shows the process's own metrics; `health/metrics.py` serves them)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_LABELS = ("route", "router", "status")
REQUESTS = Counter("budapp_gateway_requests_total", "Gateway calls answered", _LABELS)
ERRORS = Counter(
    "budapp_gateway_errors_total", "Gateway calls that ended in an error", ("route", "status")
)
UPSTREAM_FAILURES = Counter(
    "budapp_gateway_upstream_failures_total",
    "Failed attempts at a target (each may fall back to another)",
    ("router", "reason"),
)
LATENCY = Histogram(
    "budapp_gateway_request_seconds",
    "Time from request to the end of the answer",
    ("route", "router"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
TTFT = Histogram(
    "budapp_gateway_time_to_first_token_seconds",
    "Time from request to the first streamed chunk",
    ("route", "router"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TOKENS = Counter("budapp_gateway_tokens_total", "Tokens through the gateway", ("router", "kind"))
