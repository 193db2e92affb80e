"""Errors in OpenAI's shape, so that OpenAI clients raise their usual exceptions."""

from __future__ import annotations

from typing import Any

import orjson


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> bytes:
        return orjson.dumps(self.payload())

    def payload(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param)


def model_not_found(model: str) -> ApiError:
    return ApiError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def simulated_failure(status: int = 500) -> ApiError:
    if status == 429:
        return ApiError(
            429,
            "Rate limit reached (simulated failure).",
            type_="rate_limit_error",
            code="rate_limit_exceeded",
        )
    return ApiError(
        status,
        "The server had an error while processing your request (simulated failure).",
        type_="server_error" if status >= 500 else "invalid_request_error",
    )


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, code="invalid_api_key")


def too_many_requests(limit: int, retry_after_s: int) -> ApiError:
    return ApiError(
        429,
        f"Too many concurrent requests: this server handles at most {limit} at once.",
        type_="rate_limit_error",
        code="rate_limit_exceeded",
        headers=((b"retry-after", str(retry_after_s).encode()),),
    )


class SimulatedAbort(Exception):
    """Raised mid-stream to make the server cut the connection (the `abort` failure mode)."""
