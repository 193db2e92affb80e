"""Prometheus metrics of one simulator, in a registry of its own (several can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

CONTENT_TYPE = CONTENT_TYPE_LATEST


class SimMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "budapp_sim_requests",
            "Requests answered, by route and HTTP status (499: the client went away).",
            ["route", "status"],
            registry=self.registry,
        )
        self._tokens = Counter(
            "budapp_sim_tokens",
            "Tokens counted in prompts and produced in completions.",
            ["kind"],
            registry=self.registry,
        )
        self.prompt_tokens = self._tokens.labels("prompt")
        self.completion_tokens = self._tokens.labels("completion")
        self.in_flight = Gauge(
            "budapp_sim_requests_in_flight",
            "Requests being answered now (streams until their last chunk).",
            registry=self.registry,
        )
        self._duration = Histogram(
            "budapp_sim_request_duration_seconds",
            "Time from the request's arrival to its last byte, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.time_to_first_token = Histogram(
            "budapp_sim_time_to_first_token_seconds",
            "Time from a streaming request's arrival to its first content chunk.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.disconnects = Counter(
            "budapp_sim_client_disconnects",
            "Requests whose client went away before the answer was complete.",
            registry=self.registry,
        )
        self._failures = Counter(
            "budapp_sim_injected_failures",
            "Failures injected by the failure rate, by mode.",
            ["mode"],
            registry=self.registry,
        )
        # labels() takes a lock and builds a key; the few children are looked up once.
        self._request_children: dict[tuple[str, int], Counter] = {}
        self._duration_children: dict[str, Histogram] = {}

    def record_request(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self._requests.labels(route, str(status))
        child.inc()
        histogram = self._duration_children.get(route)
        if histogram is None:
            histogram = self._duration_children[route] = self._duration.labels(route)
        histogram.observe(seconds)

    def record_failure(self, mode: str) -> None:
        self._failures.labels(mode).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
