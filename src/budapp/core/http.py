"""The one place where error codes become HTTP statuses and the error envelope:
`{"error": {"code", "message", "details", "request_id"}}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from budapp.core.errors import (
    BadRequest,
    BudappError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
)
from budapp.core.logging import REQUEST_ID_HEADER, current_request_id, get_logger

log = get_logger("budapp.errors")

STATUS_BY_CODE: dict[str, int] = {
    NotFound.code: 404,
    BadRequest.code: 400,
    InvalidInput.code: 422,
    Conflict.code: 409,
    Forbidden.code: 403,
    Unauthorized.code: 401,
    RateLimited.code: 429,
    PayloadTooLarge.code: 413,
    ServiceUnavailable.code: 503,
    BudappError.code: 500,
}

# Statuses Starlette raises itself (unknown route, wrong method, body too large, ...).
_CODE_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
}


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] = []
    request_id: str | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    request_id = current_request_id()
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": details or [],
            "request_id": request_id,
        }
    }
    all_headers = dict(headers or {})
    if request_id:
        all_headers[REQUEST_ID_HEADER] = request_id
    return JSONResponse(body, status_code=status, headers=all_headers)


def errors(*kinds: type[BudappError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the typed errors a route may answer with."""
    responses: dict[int | str, dict[str, Any]] = {}
    for kind in kinds:
        status = STATUS_BY_CODE[kind.code]
        responses[status] = {"model": ErrorEnvelope, "description": kind.code}
    return responses


async def _budapp_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, BudappError):  # pragma: no cover - registered for this type only
        raise exc
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    status = STATUS_BY_CODE.get(exc.code, 500)
    if isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": "Bearer"}
    return error_response(status, exc.code, exc.message, exc.details, headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover
        raise exc
    details = [_describe(error) for error in exc.errors()]
    return error_response(422, "VALIDATION_ERROR", "Request validation failed", details)


def _describe(error: Any) -> dict[str, Any]:
    # The location without "body"/"query" noise reads as a field name; input is never echoed
    # back, since it may hold a password.
    location = [str(part) for part in error.get("loc", ())]
    where = location[0] if location else ""
    field = (
        ".".join(location[1:])
        if where in ("body", "query", "path", "header")
        else ".".join(location)
    )
    return {
        "field": field or where,
        "in": where,
        "message": error.get("msg", ""),
        "type": error.get("type", ""),
    }


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
        raise exc
    code = _CODE_BY_STATUS.get(exc.status_code, "HTTP_ERROR")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _integrity_error(_: Request, exc: Exception) -> JSONResponse:
    # A unique index caught what a service's check let through: two concurrent writes of the
    # same name. The loser gets the same answer the check would have given.
    log.info("integrity_conflict", error=str(getattr(exc, "orig", exc))[:200])
    return error_response(409, Conflict.code, "The change conflicts with existing data")


def is_database_busy(exc: BaseException) -> bool:
    """SQLite refusing a write because another transaction holds (or just changed) the
    database: the request may simply be tried again."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


async def _operational_error(request: Request, exc: Exception) -> JSONResponse:
    if is_database_busy(exc):
        log.warning("database_busy")
        return error_response(
            503,
            ServiceUnavailable.code,
            "The database is busy; retry the request",
            headers={"Retry-After": "1"},
        )
    return await _unexpected_error(request, exc)


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_exception", exc_info=exc)
    return error_response(500, "INTERNAL_ERROR", "An unexpected error occurred")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BudappError, _budapp_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(OperationalError, _operational_error)
    app.add_exception_handler(Exception, _unexpected_error)
