from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from budapp.bootstrap import ensure_initial_admin
from budapp.core.components import PASSWORD_HASHER, components
from budapp.settings import Settings


async def _bootstrap(app: FastAPI, settings: Settings) -> str | None:
    state = components(app)
    return await ensure_initial_admin(
        state.session_factory, settings, state[PASSWORD_HASHER], state.references
    )


async def test_first_start_creates_super_admin_with_configured_password(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient
) -> None:
    assert await _bootstrap(app, settings) is None
    response = await client.post(
        "/auth/login", json={"email": settings.admin_email, "password": "bootstrap-password"}
    )
    assert response.status_code == 200
    me = await client.get(
        "/auth/me", headers={"Authorization": f"Bearer {response.json()['data']['access_token']}"}
    )
    assert me.json()["data"]["role"] == "super_admin"
    assert me.json()["data"]["organization"]["name"] == "Default"


async def test_first_start_generates_a_password_when_none_is_configured(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient
) -> None:
    generated = await _bootstrap(app, settings.model_copy(update={"admin_password": None}))
    assert generated is not None
    assert len(generated) >= 20
    response = await client.post(
        "/auth/login", json={"email": settings.admin_email, "password": generated}
    )
    assert response.status_code == 200


@pytest.mark.usefixtures("world")
async def test_bootstrap_does_nothing_when_users_exist(app: FastAPI, settings: Settings) -> None:
    assert await _bootstrap(app, settings.model_copy(update={"admin_password": None})) is None
