"""Typed errors raised by services. They carry a code, never an HTTP status:
`core.http` is the one place that maps codes to statuses and the error envelope."""

from __future__ import annotations

from typing import Any


class BudappError(Exception):
    code = "INTERNAL_ERROR"
    # Keep what the unit of work wrote before the error (e.g. revoking a session on token
    # reuse must stick even though the request itself fails).
    commit = False

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class NotFound(BudappError):
    code = "NOT_FOUND"

    def __init__(self, resource: str, identifier: object | None = None) -> None:
        suffix = f" {identifier}" if identifier is not None else ""
        super().__init__(f"{resource}{suffix} not found")
        self.resource = resource


class Conflict(BudappError):
    code = "CONFLICT"


class BadRequest(BudappError):
    """A request a protocol defines the 400 answer for (e.g. an invalid OpenID logout token)."""

    code = "BAD_REQUEST"


class InvalidInput(BudappError):
    """Input that passed schema validation but breaks a business rule."""

    code = "VALIDATION_ERROR"


class Unauthorized(BudappError):
    code = "UNAUTHORIZED"

    def __init__(self, message: str = "Authentication required") -> None:
        super().__init__(message)


class Forbidden(BudappError):
    code = "FORBIDDEN"

    def __init__(self, message: str = "You are not allowed to do this") -> None:
        super().__init__(message)


class RateLimited(BudappError):
    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(BudappError):
    code = "SERVICE_UNAVAILABLE"


class PayloadTooLarge(BudappError):
    code = "PAYLOAD_TOO_LARGE"
