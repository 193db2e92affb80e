"""Prometheus metrics of usage metering and retention (the default registry, on `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter

METER_DROPPED = Counter(
    "budapp_gateway_usage_dropped_total", "Usage records dropped: the database was unreachable"
)

USAGE_ROWS_DELETED = Counter(
    "budapp_usage_records_deleted_total",
    "Per-call usage rows deleted by the retention sweep (the hourly and daily sums stay)",
)
