"""Managing webhooks: the secret is shown once and kept sealed, URLs and event patterns are
checked, and admins of one organization never see another's webhooks."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from budapp.core.components import components
from budapp.core.db import session_scope, utcnow
from budapp.settings import Settings
from budapp.webhooks.service import emit_webhook_event
from tests.credentials.test_secrets_never_leak import database_dump, database_files
from tests.factories import World, create_organization
from tests.webhooks.conftest import create_webhook, deliveries

URL = "https://hooks.example.com/budapp"


async def test_the_secret_is_shown_at_creation_and_rotation_only(
    app: FastAPI, client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    admin = world["org_admin"].headers
    created = await create_webhook(client, world, URL, ["endpoint.*"], description="ops")
    first = created["secret"]
    assert first.startswith("whsec_")
    assert len(first) > 40
    webhook_id = created["id"]
    rotated = await client.post(f"/webhooks/{webhook_id}/rotate-secret", headers=admin)
    second = rotated.json()["data"]["secret"]

    bodies = [
        (await client.get(f"/webhooks/{webhook_id}", headers=admin)).text,
        (await client.get("/webhooks", headers=admin)).text,
        (await client.put(f"/webhooks/{webhook_id}", json={"active": False}, headers=admin)).text,
        (await client.get(f"/webhooks/{webhook_id}/deliveries", headers=admin)).text,
        (await client.get("/audit/export", headers=world["super_admin"].headers)).text,
    ]
    places = {
        "responses": "\n".join(bodies),
        "database rows": await database_dump(app),
        "database file": database_files(settings.resolved_database_url).decode("latin-1"),
    }
    assert "webhook.create" in places["responses"]  # the audit export was read
    assert "secret" not in bodies[0]
    for secret in (first, second):
        for place, text in places.items():
            assert secret[6:] not in text, f"a webhook secret found in {place}"


async def test_create_read_update_and_delete(client: httpx.AsyncClient, world: World) -> None:
    admin = world["org_admin"].headers
    created = await create_webhook(client, world, URL, ["endpoint.ready", "endpoint.ready"])
    assert created["events"] == ["endpoint.ready"]
    assert created["active"] is True
    assert created["organization_id"] == str(world.org_a)
    assert created["created_by"] == str(world["org_admin"].id)

    changes = {"url": URL + "/v2", "events": ["*"], "description": "all of it", "active": False}
    updated = await client.put(f"/webhooks/{created['id']}", json=changes, headers=admin)
    assert updated.status_code == 200
    assert {k: updated.json()["data"][k] for k in changes} == changes
    inactive = await client.get("/webhooks", params={"active": "false"}, headers=admin)
    assert [w["id"] for w in inactive.json()["data"]] == [created["id"]]

    deleted = await client.delete(f"/webhooks/{created['id']}", headers=admin)
    assert deleted.status_code == 204
    assert (await client.get(f"/webhooks/{created['id']}", headers=admin)).status_code == 404
    assert (await client.get("/webhooks", headers=admin)).json()["meta"]["total"] == 0


async def test_a_super_admin_creates_in_another_organization_and_others_cannot(
    client: httpx.AsyncClient, world: World
) -> None:
    body = {"url": URL, "events": ["*"], "organization_id": str(world.org_b)}
    by_super = await client.post("/webhooks", json=body, headers=world["super_admin"].headers)
    by_admin = await client.post("/webhooks", json=body, headers=world["org_admin"].headers)

    assert by_super.status_code == 201
    assert by_super.json()["data"]["organization_id"] == str(world.org_b)
    assert by_admin.status_code == 404
    listed = await client.get("/webhooks", headers=world["org_admin_b"].headers)
    assert [w["id"] for w in listed.json()["data"]] == [by_super.json()["data"]["id"]]


async def test_a_test_delivery_needs_an_active_webhook(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await create_webhook(client, world, URL, active=False)
    response = await client.post(
        f"/webhooks/{created['id']}/test", headers=world["org_admin"].headers
    )
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://hooks.example.com/x", "events": ["*"]}, "url"),
        ({"url": "https://user:pw@hooks.example.com/x", "events": ["*"]}, "url"),
        ({"url": "not a url", "events": ["*"]}, "url"),
        ({"url": "https://hooks.example.com/" + "x" * 2100, "events": ["*"]}, "url"),
        ({"url": URL, "events": []}, "events"),
        ({"url": URL, "events": ["Endpoint.Ready"]}, "events"),
        ({"url": URL, "events": ["endpoint.*.ready"]}, "events"),
        ({"url": URL, "events": ["*"], "secret": "mine"}, "secret"),
        ({"url": URL, "events": ["*"], "description": "a\x00b"}, "description"),
    ],
)
async def test_invalid_input_is_a_validation_error(
    client: httpx.AsyncClient, world: World, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/webhooks", json=body, headers=world["org_admin"].headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert any(field in detail["field"] for detail in error["details"]), error
    listed = await client.get("/webhooks", headers=world["org_admin"].headers)
    assert listed.json()["meta"]["total"] == 0


@pytest.mark.parametrize("body", [{"url": None}, {"events": None}, {"active": None}])
async def test_required_fields_cannot_be_cleared(
    client: httpx.AsyncClient, world: World, body: dict[str, Any]
) -> None:
    created = await create_webhook(client, world, URL)
    response = await client.put(
        f"/webhooks/{created['id']}", json=body, headers=world["org_admin"].headers
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:192.168.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
async def test_private_addresses_are_refused_when_not_allowed(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
) -> None:
    monkeypatch.setattr(app.state.settings, "webhook_allow_private_destinations", False)
    response = await client.post(
        "/webhooks", json={"url": url, "events": ["*"]}, headers=world["org_admin"].headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "url"


def test_private_destinations_are_allowed_by_default_on_the_embedded_database_only() -> None:
    assert Settings(database_url="").webhook_private_destinations_allowed is True
    postgres = Settings(database_url="postgresql+asyncpg://db/budapp")
    assert postgres.webhook_private_destinations_allowed is False
    assert Settings(
        database_url="postgresql+asyncpg://db/budapp", webhook_allow_private_destinations=True
    ).webhook_private_destinations_allowed


async def test_an_organization_with_webhooks_cannot_be_deleted(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    org = await create_organization(app, "Hooked")
    body = {"url": URL, "events": ["*"], "organization_id": str(org)}
    headers = world["super_admin"].headers
    created = await client.post("/webhooks", json=body, headers=headers)

    refused = await client.delete(f"/organizations/{org}", headers=headers)
    assert refused.status_code == 409
    assert "1 webhook(s)" in refused.json()["error"]["message"]
    await client.delete(f"/webhooks/{created.json()['data']['id']}", headers=headers)
    assert (await client.delete(f"/organizations/{org}", headers=headers)).status_code == 204


async def test_events_carry_ids_and_times_as_json(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    webhook = await create_webhook(client, world, URL, ["endpoint.deleted"])
    endpoint = uuid.uuid4()
    async with session_scope(components(app).session_factory) as session:
        queued = await emit_webhook_event(
            session,
            organization_id=world.org_a,
            event="endpoint.deleted",
            data={"endpoint_id": endpoint, "at": utcnow()},
        )
    assert queued == 1
    [logged] = await deliveries(client, world, webhook["id"])
    assert logged["payload"]["data"]["endpoint_id"] == str(endpoint)
    assert logged["status"] == "pending"
