from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from budapp.adapters.cache.redis import RedisWindowCounter
from budapp.adapters.storage import LocalObjectStorage
from budapp.core.components import STORAGE, components


async def test_health_is_public(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["data"] == {"status": "ok"}


async def test_ready_checks_database_cache_and_storage(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json()["data"] == {
        "status": "ok",
        "database": "ok",
        "cache": "ok",
        "storage": "ok",
    }


async def test_ready_is_503_when_object_storage_is_gone(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    healthy = components(app)[STORAGE]
    components(app).replace(STORAGE, LocalObjectStorage(tmp_path / "never-created"))
    try:
        response = await client.get("/ready")
    finally:
        components(app).replace(STORAGE, healthy)
    assert response.status_code == 503
    assert {"backend": "storage", "status": "unavailable"} in response.json()["error"]["details"]


async def test_ready_is_503_when_a_backend_is_down(client: httpx.AsyncClient, app: FastAPI) -> None:
    healthy = components(app).window_counter
    # Nothing listens on port 1: the cache is unreachable.
    components(app).window_counter = RedisWindowCounter.from_url("redis://127.0.0.1:1/0")
    try:
        response = await client.get("/ready")
    finally:
        await components(app).window_counter.close()
        components(app).window_counter = healthy
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "SERVICE_UNAVAILABLE"
    assert {"backend": "cache", "status": "unavailable"} in error["details"]


async def test_docs_render_without_a_cdn(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        assert "cdn." not in html
        assert "fonts.googleapis" not in html
        assert "/static-offline-docs/" in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        response = await client.get(f"/static-offline-docs/{asset}")
        assert response.status_code == 200
        assert len(response.content) > 10_000


async def test_openapi_documents_every_management_route(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/me",
        "/users",
        "/users/{user_id}",
        "/users/{user_id}/roles",
        "/projects",
        "/projects/{project_id}",
        "/projects/{project_id}/members",
        "/projects/{project_id}/members/{user_id}",
        "/organizations",
        "/organizations/{organization_id}",
    ):
        assert path in paths, path
    assert "ErrorEnvelope" in schema["components"]["schemas"]
