from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from budapp.core.components import STORAGE, components
from budapp.core.envelope import Envelope
from budapp.core.errors import ServiceUnavailable
from budapp.core.http import error_response, errors
from budapp.core.logging import get_logger

router = APIRouter(tags=["operations"])
log = get_logger("budapp.health")


@router.get("/health")
async def health() -> Envelope[dict[str, str]]:
    """The process is alive and serving requests."""
    return Envelope(data={"status": "ok"})


@router.get("/ready", response_model=Envelope[dict[str, str]], responses=errors(ServiceUnavailable))
async def ready(request: Request) -> Envelope[dict[str, str]] | JSONResponse:
    """Every backend budapp needs answers: the database, object storage, and the cache when
    one is configured."""
    state = components(request)
    checks: dict[str, str] = {}
    try:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        log.warning("readiness_check_failed", backend="database", error=str(exc))
        checks["database"] = "unavailable"
    try:
        await state.window_counter.ping()
        checks["cache"] = "ok"
    except Exception as exc:
        log.warning("readiness_check_failed", backend="cache", error=str(exc))
        checks["cache"] = "unavailable"
    try:
        await state[STORAGE].ping()
        checks["storage"] = "ok"
    except Exception as exc:
        log.warning("readiness_check_failed", backend="storage", error=str(exc))
        checks["storage"] = "unavailable"
    if all(value == "ok" for value in checks.values()):
        return Envelope(data={"status": "ok", **checks})
    details = [{"backend": name, "status": status} for name, status in checks.items()]
    return error_response(503, ServiceUnavailable.code, "A backend is unavailable", details)
