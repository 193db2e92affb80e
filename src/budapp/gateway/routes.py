"""The OpenAI-compatible routes, as a bare Starlette router (no FastAPI dependency injection
or validation on the hot path), mounted at `/v1`. `holder.gateway` is set by the lifespan."""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from budapp.gateway.errors import error_response
from budapp.gateway.proxy import Gateway
from budapp.gateway.streaming import RelayResponse

_KNOWN = {
    "/chat/completions": "POST",
    "/completions": "POST",
    "/embeddings": "POST",
    "/models": "GET",
}


class GatewayHolder(Protocol):
    @property
    def gateway(self) -> Gateway: ...


def gateway_routes(holder: GatewayHolder) -> Router:
    async def chat_completions(request: Request) -> Response | RelayResponse:
        return await holder.gateway.chat_completions(request)

    async def completions(request: Request) -> Response | RelayResponse:
        return await holder.gateway.completions(request)

    async def embeddings(request: Request) -> Response | RelayResponse:
        return await holder.gateway.embeddings(request)

    async def models(request: Request) -> Response:
        return await holder.gateway.models(request)

    async def unknown(request: Request) -> Response:
        path = "/" + request.path_params["path"]
        method = _KNOWN.get(path)
        if method is not None or (path.startswith("/models/") and request.method != "GET"):
            return error_response(
                405, f"{request.method} is not allowed on /v1{path}", code="method_not_allowed"
            )
        return error_response(404, f"/v1{path} is not a route of this gateway", code="not_found")

    return Router(
        routes=[
            Route("/chat/completions", chat_completions, methods=["POST"]),
            Route("/completions", completions, methods=["POST"]),
            Route("/embeddings", embeddings, methods=["POST"]),
            Route("/models", models, methods=["GET"]),
            Route("/models/{model:path}", models, methods=["GET"]),
            Route(
                "/{path:path}",
                unknown,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"],
            ),
        ]
    )
