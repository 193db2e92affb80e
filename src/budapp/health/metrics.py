"""`/metrics`: every Prometheus metric of the process (gateway, usage, the process itself)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response


async def metrics_endpoint(request: Request) -> Response:
    del request
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
