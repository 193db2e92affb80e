"""Without BUDAPP_APP_API_TOKEN (the default app of the test session) internal routes are shut."""

from __future__ import annotations

import httpx


async def test_internal_routes_refuse_everyone_without_a_configured_token(
    client: httpx.AsyncClient,
) -> None:
    for headers in ({}, {"X-API-Token": ""}, {"X-API-Token": "anything"}):
        response = await client.get("/internal/health", headers=headers)
        assert response.status_code == 401
        assert "not set" in response.json()["error"]["message"]
