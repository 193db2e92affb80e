"""Request bodies that a route reads itself: a JSON body on a route that also takes a
streamed multipart upload (FastAPI would otherwise buffer the upload to parse it)."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from budapp.core.errors import InvalidInput, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BYTES = 256 * 1024


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def json_body(request: Request, schema: type[M], max_bytes: int = MAX_JSON_BYTES) -> M:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"A JSON body may hold at most {max_bytes} bytes")
    try:
        return schema.model_validate_json(bytes(body))
    except ValidationError as exc:
        raise InvalidInput("Request validation failed", details=_details(exc)) from None


def _details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(part) for part in error["loc"]),
            "in": "body",
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors()
    ]


def multipart_openapi(fields: dict[str, Any], json_schema: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a body the route reads itself: multipart or JSON."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": fields, "required": ["name"]}
                },
                "application/json": {"schema": json_schema.model_json_schema()},
            },
        }
    }
