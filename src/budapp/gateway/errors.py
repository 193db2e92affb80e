"""OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, for every answer
of the gateway that is not a success: OpenAI clients parse it and raise their own errors."""

from __future__ import annotations

import orjson
from starlette.responses import Response


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}

    def response(self) -> Response:
        return error_response(
            self.status,
            self.message,
            type_=self.type,
            code=self.code,
            param=self.param,
            headers=self.headers,
        )


def error_response(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, code="invalid_api_key")


def bad_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code="invalid_request")


def model_not_found(model: str) -> GatewayError:
    return GatewayError(
        404,
        f"The model {model!r} does not exist or this API key's project has no router by that name",
        param="model",
        code="model_not_found",
    )


def unavailable(message: str) -> GatewayError:
    return GatewayError(503, message, type_="service_unavailable", code="no_target_available")


def upstream_failed(message: str, status: int = 502) -> GatewayError:
    return GatewayError(status, message, type_="api_error", code="upstream_error")
