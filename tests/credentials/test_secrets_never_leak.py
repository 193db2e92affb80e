"""No plaintext secret (credential fields, passwords) ever leaves the vault: not in a response
body, a log line at DEBUG level, an audit record or export, nor anywhere in the database."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.engine import make_url

from budapp.core.components import components
from budapp.main import create_app
from budapp.registry import metadata
from budapp.settings import Settings
from tests.credentials.samples import (
    SECRET_FIELDS,
    canary,
    masked,
    sample,
    service_account_json,
)
from tests.factories import PASSWORD, World

KINDS = sorted(SECRET_FIELDS)


@pytest.fixture
def log_stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Receives every log line of the apps created while it is active; the logging set-up is
    put back afterwards."""
    saved = structlog.get_config()
    root, statements = logging.getLogger(), logging.getLogger("sqlalchemy.engine.Engine")
    handlers, level, statement_handlers = root.handlers[:], root.level, statements.handlers[:]
    # Module-level loggers keep the stream and level they were first used with: swap in fresh
    # ones so that this test's configuration (DEBUG, into the stream) reaches every line.
    proxy = type(structlog.get_logger())
    for module in [m for name, m in list(sys.modules.items()) if name.startswith("budapp")]:
        for attribute, value in list(vars(module).items()):
            if isinstance(value, proxy):
                fresh = structlog.get_logger(*value._logger_factory_args)
                monkeypatch.setattr(module, attribute, fresh)
    stream = io.StringIO()
    yield stream
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    statements.handlers[:] = statement_handlers


@dataclass
class Recorder:
    client: httpx.AsyncClient
    bodies: list[str]


@asynccontextmanager
async def verbose_app(settings: Settings, stream: io.StringIO) -> AsyncIterator[Recorder]:
    """A second instance on the suite's database and data directory (so the world's tokens
    and keys hold), logging everything at DEBUG into `stream`, SQL statements and their
    parameters included, its client keeping each body."""
    verbose = {"log_level": "DEBUG", "access_log": True, "database_echo": True}
    original, sys.stderr = sys.stderr, stream
    try:
        application: FastAPI = create_app(settings.model_copy(update=verbose))
    finally:
        sys.stderr = original
    bodies: list[str] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        bodies.append(response.text)

    transport = httpx.ASGITransport(app=application)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=transport, base_url="http://budapp.test", event_hooks={"response": [keep]}
        ) as client,
    ):
        yield Recorder(client, bodies)


def bearer(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['data']['access_token']}"}


async def exercise_users(http: httpx.AsyncClient, world: World) -> list[str]:
    """Creates a user, logs in, fails a login, changes and resets the password."""
    first, wrong, changed, reset = (
        canary(f"password_{n}") for n in ("first", "wrong", "new", "reset")
    )
    admin = world["org_admin"].headers
    created = await http.post(
        "/users",
        json={"email": "leaky@example.com", "name": "Leaky", "password": first},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["data"]["id"]
    login = {"email": "leaky@example.com", "password": first}
    own = bearer(await http.post("/auth/login", json=login))
    failed = await http.post("/auth/login", json={**login, "password": wrong})
    assert failed.status_code == 401
    response = await http.put(
        f"/users/{user_id}", json={"password": changed, "current_password": first}, headers=own
    )
    assert response.status_code == 200, response.text
    # The change ended every session of the user: a new one, for a change that is refused.
    own = bearer(await http.post("/auth/login", json={**login, "password": changed}))
    response = await http.put(
        f"/users/{user_id}", json={"password": reset, "current_password": wrong}, headers=own
    )
    assert response.status_code == 422, response.text
    response = await http.put(f"/users/{user_id}", json={"password": reset}, headers=admin)
    assert response.status_code == 200, response.text
    bearer(await http.post("/auth/login", json={**login, "password": reset}))
    return [first, wrong, changed, reset]


async def exercise_credentials(http: httpx.AsyncClient, world: World) -> tuple[list[str], str]:
    """Creates every kind, updates secrets, tries invalid input carrying secrets, lists, reads
    and deletes. Returns the secrets used and one masked value the bodies must show."""
    admin, project_admin = world["org_admin"].headers, world["project_admin"].headers
    secrets: list[str] = []
    ids: dict[str, str] = {}
    for index, kind in enumerate(KINDS):
        given = sample(kind)
        secrets += given.canaries
        body: dict[str, Any] = {"name": f"leak {kind}", "spec": given.spec}
        if index % 2:
            body["project_id"] = str(world.project_a)
        response = await http.post(
            "/credentials", json=body, headers=project_admin if index % 2 else admin
        )
        assert response.status_code == 201, response.text
        ids[kind] = response.json()["data"]["id"]

    new_key, new_secret, new_private = canary("new_api_key"), canary("new_aws"), canary("new_gcp")
    secrets += [new_key, new_secret, new_private]
    for kind, spec in (
        ("openai", {"api_key": new_key}),
        ("aws", {"kind": "aws", "secret_access_key": new_secret}),
        ("gcp", {"service_account_json": service_account_json(new_private)}),
    ):
        response = await http.put(f"/credentials/{ids[kind]}", json={"spec": spec}, headers=admin)
        assert response.status_code == 200, response.text

    refused = [canary(f"refused_{n}") for n in range(5)]
    secrets += refused
    for method, path, body in (
        ("PUT", f"/credentials/{ids['openai']}", {"spec": {"api_key": refused[0], "x": 1}}),
        (
            "PUT",
            f"/credentials/{ids['aws']}",
            {"spec": {"kind": "azure", "client_secret": refused[1]}},
        ),
        (
            "POST",
            "/credentials",
            {"name": "bad", "spec": {"kind": "openai", "api_key": refused[2], "extra": 1}},
        ),
        (
            "POST",
            "/credentials",
            {
                "name": "bad",
                "spec": {
                    "kind": "gcp",
                    "service_account_json": service_account_json(refused[3], type="user"),
                },
            },
        ),
        (
            "POST",
            "/credentials",
            {"name": "bad", "spec": {"kind": "kubeconfig", "kubeconfig": f"token: {refused[4]}"}},
        ),
    ):
        response = await http.request(method, path, json=body, headers=admin)
        assert response.status_code == 422, response.text

    for actor in ("org_admin", "project_admin", "user", "super_admin"):
        listed = await http.get("/credentials", headers=world[actor].headers)
        assert listed.status_code == 200
        for item in listed.json()["data"]:
            single = await http.get(f"/credentials/{item['id']}", headers=world[actor].headers)
            assert single.status_code == 200
    deleted = await http.delete(f"/credentials/{ids['huggingface']}", headers=admin)
    assert deleted.status_code == 204
    return secrets, masked(new_key)


async def exercise_audit(http: httpx.AsyncClient, world: World) -> str:
    """Lists, reads and exports the audit trail; returns the JSON-lines export."""
    for actor in ("super_admin", "org_admin"):
        listed = await http.get("/audit", params={"per_page": 500}, headers=world[actor].headers)
        assert listed.status_code == 200, listed.text
    records = listed.json()["data"]
    for record in records:
        if record["resource_type"] == "credential":
            single = await http.get(f"/audit/{record['id']}", headers=world["org_admin"].headers)
            assert single.status_code == 200
    csv = await http.get(
        "/audit/export", params={"format": "csv"}, headers=world["super_admin"].headers
    )
    assert csv.status_code == 200
    export = await http.get("/audit/export", headers=world["super_admin"].headers)
    assert export.status_code == 200
    return export.text


async def database_dump(app: FastAPI) -> str:
    lines = []
    async with components(app).engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in await connection.execute(select(table)):
                lines.append(f"{table.name}: {row!r}")
    return "\n".join(lines)


def database_files(url: str) -> bytes:
    if not url.startswith("sqlite"):
        return b""
    path = Path(str(make_url(url).database))
    siblings = (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal"))
    return b"".join(p.read_bytes() for p in siblings if p.exists())


async def test_no_secret_appears_in_bodies_logs_audit_or_database(
    app: FastAPI, world: World, settings: Settings, log_stream: io.StringIO
) -> None:
    async with verbose_app(settings, log_stream) as recorder:
        http = recorder.client
        secrets = [PASSWORD, *await exercise_users(http, world)]
        credential_secrets, shown = await exercise_credentials(http, world)
        secrets += credential_secrets
        export = await exercise_audit(http, world)

    # The checks below can only pass by finding nothing if they look at the right things.
    assert len(recorder.bodies) > 60
    assert any(f'"{shown}"' in body for body in recorder.bodies)
    events = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.strip()]
    assert any(e.get("event") == "request" and e.get("path") == "/credentials" for e in events)
    assert any(e.get("event") == "budapp_started" for e in events)
    assert any(str(e.get("event")).startswith("INSERT INTO credentials") for e in events)
    assert '"action": "credential.update"' in export or '"action":"credential.update"' in export
    dump = await database_dump(app)
    assert "credential.create" in dump

    # Masks show the last four characters: everything before them must appear nowhere.
    places = {
        "response body": "\n".join(recorder.bodies),
        "log": log_stream.getvalue(),
        "audit export": export,
        "database rows": dump,
        "database file": database_files(settings.resolved_database_url).decode("latin-1"),
    }
    assert len(secrets) > 20
    for secret in secrets:
        needle = secret[:-4]
        for place, text in places.items():
            assert needle not in text, f"{secret} found in {place}"


async def test_validation_errors_never_echo_the_input(
    client: httpx.AsyncClient, world: World
) -> None:
    secret = canary("echo")
    for spec in (
        {"kind": "openai", "api_key": secret * 100},
        {"kind": "openai", "api_key": secret, "unknown": secret},
        {"kind": "nope", "api_key": secret},
        {"kind": "gcp", "service_account_json": secret},
        {"kind": "kubeconfig", "kubeconfig": secret},
        {"kind": "openai", "api_key": secret + "\x00"},
    ):
        response = await client.post(
            "/credentials", json={"name": "x", "spec": spec}, headers=world["org_admin"].headers
        )
        assert response.status_code == 422, response.text
        assert secret[:-4] not in response.text
