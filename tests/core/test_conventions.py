from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from budapp.main import create_app
from budapp.settings import Settings
from budapp.users.repository import UserRepository
from tests.factories import World


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


async def test_request_id_is_generated_when_missing_or_unsafe(client: httpx.AsyncClient) -> None:
    generated = await client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32
    unsafe = await client.get("/health", headers={"X-Request-ID": "a b\nforged"})
    assert unsafe.headers["x-request-id"] != "a b\nforged"
    assert " " not in unsafe.headers["x-request-id"]


async def test_error_envelope_carries_code_and_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/no-such-route", headers={"X-Request-ID": "req-1"})
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "NOT_FOUND",
            "message": "Not Found",
            "details": [],
            "request_id": "req-1",
        }
    }


async def test_wrong_method_is_405_in_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_malformed_json_is_422(client: httpx.AsyncClient, world: World) -> None:
    response = await client.post(
        "/projects",
        content=b'{"name": ',
        headers={**world["org_admin"].headers, "content-type": "application/json"},
    )
    assert response.status_code == 422
    body = response.json()["error"]
    assert body["code"] == "VALIDATION_ERROR"
    assert body["details"][0]["type"] == "json_invalid"


async def test_validation_error_names_the_field_and_hides_the_input(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/auth/login", json={"email": "someone@example.com", "password": 12345}
    )
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert details[0]["field"] == "password"
    assert "12345" not in response.text


async def test_unexpected_exception_is_500_without_stack_trace(settings: Settings) -> None:
    application: FastAPI = create_app(settings)
    boom = APIRouter()

    @boom.get("/boom")
    async def explode() -> None:
        raise RuntimeError("secret internal detail")

    application.include_router(boom)
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.get("/boom", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-500"
    error = response.json()["error"]
    assert error == {
        "code": "INTERNAL_ERROR",
        "message": "An unexpected error occurred",
        "details": [],
        "request_id": "req-500",
    }
    assert "Traceback" not in response.text
    assert "secret internal detail" not in response.text


async def test_api_prefix_mounts_management_routes(settings: Settings) -> None:
    application = create_app(settings.model_copy(update={"api_prefix": "/api"}))
    transport = httpx.ASGITransport(app=application)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=transport, base_url="http://t") as http,
    ):
        assert (await http.get("/api/auth/me")).status_code == 401
        assert (await http.get("/auth/me")).status_code == 404
        assert (await http.get("/health")).status_code == 200


async def test_oversized_body_is_413_in_error_shape(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    big = "x" * (settings.max_request_body_bytes + 1)
    response = await client.post(
        "/projects",
        content=f'{{"name": "{big}"}}'.encode(),
        headers={**world["org_admin"].headers, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    listed = await client.get("/projects", headers=world["org_admin"].headers)
    assert listed.json()["meta"]["total"] == 1


async def test_streamed_oversized_body_is_413(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(settings.max_request_body_bytes // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    response = await client.post(
        "/projects",
        content=chunks(),
        headers={**world["org_admin"].headers, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_unique_index_violation_is_409_not_500(
    client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two concurrent creates can both pass the service's e-mail check; the unique index stops
    # the second. Simulate the lost race by making the check always answer "free".
    async def never_taken(*_: object, **__: object) -> bool:
        return False

    monkeypatch.setattr(UserRepository, "email_taken", never_taken)
    headers = world["org_admin"].headers
    body = {"email": "race@example.com", "name": "Race", "password": "long-enough-pass"}
    assert (await client.post("/users", json=body, headers=headers)).status_code == 201
    second = await client.post("/users", json=body, headers=headers)
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "CONFLICT"
    listed = await client.get("/users", params={"search": "race@"}, headers=headers)
    assert listed.json()["meta"]["total"] == 1
