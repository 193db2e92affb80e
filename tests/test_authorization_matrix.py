"""Every management route against every kind of caller.

Targets live in organization A. `user` is a developer member of project A, `outsider` a user
of A in no project, `user_b`/`org_admin_b` belong to organization B: for them every id of A must
look like it does not exist (404), never 403."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from budapp.core.components import components
from budapp.core.db import session_scope
from budapp.core.roles import Role
from budapp.notifications.service import notify
from tests.catalog import samples
from tests.catalog.helpers import upload_model, wait_for_scan
from tests.clusters.factories import create_cluster
from tests.credentials.samples import create_id
from tests.factories import World, create_account, create_organization

# A placeholder for cases that need no API key.
NO_KEY = uuid.UUID(int=0)

ACTORS = [
    "anonymous",
    "user",
    "outsider",
    "project_admin",
    "org_admin",
    "super_admin",
    "user_b",
    "org_admin_b",
]


@dataclass
class Targets:
    world: World
    target_user: uuid.UUID
    empty_org: uuid.UUID
    api_key: uuid.UUID = NO_KEY
    # A notification in `user`'s inbox, and a webhook of organization A.
    notification: uuid.UUID = NO_KEY
    webhook: uuid.UUID = NO_KEY
    cluster: uuid.UUID = NO_KEY
    # Made for model and dataset cases only (see _catalog_targets).
    credential: uuid.UUID = NO_KEY
    model: uuid.UUID = NO_KEY
    model_file: uuid.UUID = NO_KEY
    failed_model: uuid.UUID = NO_KEY
    dataset: uuid.UUID = NO_KEY
    router: uuid.UUID = NO_KEY


Path = Callable[[Targets], str]
Body = Callable[[Targets], dict[str, Any]] | None
# Multipart: (form fields, files) for httpx.
Upload = Callable[[], tuple[dict[str, str], dict[str, tuple[str, bytes]]]] | None


@dataclass(frozen=True)
class Case:
    method: str
    path: Path
    body: Body
    expected: dict[str, int]
    upload: Upload = None

    def status(self, actor: str) -> int:
        return self.expected.get(actor, self.expected.get("*", 0))


def _by(
    anonymous: int = 401,
    user: int | None = None,
    outsider: int | None = None,
    project_admin: int | None = None,
    org_admin: int | None = None,
    super_admin: int | None = None,
    user_b: int | None = None,
    org_admin_b: int | None = None,
) -> dict[str, int]:
    table = {
        "anonymous": anonymous,
        "user": user,
        "outsider": outsider if outsider is not None else user,
        "project_admin": project_admin,
        "org_admin": org_admin,
        "super_admin": super_admin,
        "user_b": user_b,
        "org_admin_b": org_admin_b,
    }
    return {k: v for k, v in table.items() if v is not None}


def _unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def _jsonl() -> bytes:
    # Unique content: a dataset version is identified by its bytes.
    return f'{{"text": "{uuid.uuid4().hex}"}}\n'.encode()


async def _catalog_targets(client: httpx.AsyncClient, targets: Targets) -> None:
    """An organisation-wide credential, a model that passed its scan (with a file), one that
    failed it, and a dataset, all in organization A."""
    admin = targets.world["org_admin"].headers
    targets.credential = await create_id(
        client, admin, {"kind": "openai", "api_key": "sk-matrix-0123456789"}
    )
    passed = await upload_model(client, admin, {"config.json": samples.config_json()})
    model = await wait_for_scan(client, admin, passed.json()["data"]["id"])
    targets.model = uuid.UUID(model["id"])
    targets.model_file = uuid.UUID(model["files"][0]["id"])
    failed = await upload_model(client, admin, {"model.pkl": samples.malicious_pickle()})
    targets.failed_model = uuid.UUID(
        (await wait_for_scan(client, admin, failed.json()["data"]["id"]))["id"]
    )
    dataset = await client.post(
        "/datasets",
        data={"name": _unique("data")},
        files={"file": ("d.jsonl", _jsonl())},
        headers=admin,
    )
    targets.dataset = uuid.UUID(dataset.json()["data"]["id"])


def _project(t: Targets) -> str:
    return f"/projects/{t.world.project_a}"


def _notification(t: Targets) -> str:
    return f"/notifications/{t.notification}"


def _webhook(t: Targets) -> str:
    return f"/webhooks/{t.webhook}"


# Every signed-in caller has an inbox; only its owner reaches a notification in it.
_EVERYONE = _by(401, 200, 200, 200, 200, 200, 200, 200)
_OWNER_ONLY = {"anonymous": 401, "user": 200, "*": 404}
# Webhooks: org admins of the organization (and super admins).
_WEBHOOK_ADMINS = _by(401, 403, 403, 403, 200, 200, 403, 404)


CASES: dict[str, Case] = {
    # In local identity mode there is no provider session to end: end_session_url is null.
    "sso logout": Case(
        "POST", lambda t: "/auth/oauth/logout", None, _by(401, 200, 200, 200, 200, 200, 200, 200)
    ),
    "me": Case("GET", lambda t: "/auth/me", None, _by(401, 200, 200, 200, 200, 200, 200, 200)),
    "logout": Case(
        "POST", lambda t: "/auth/logout", None, _by(401, 204, 204, 204, 204, 204, 204, 204)
    ),
    "list organizations": Case(
        "GET", lambda t: "/organizations", None, _by(401, 200, 200, 200, 200, 200, 200, 200)
    ),
    "create organization": Case(
        "POST",
        lambda t: "/organizations",
        lambda t: {"name": _unique("Org")},
        _by(401, 403, 403, 403, 403, 201, 403, 403),
    ),
    "get organization": Case(
        "GET",
        lambda t: f"/organizations/{t.world.org_a}",
        None,
        _by(401, 200, 200, 200, 200, 200, 404, 404),
    ),
    "update organization": Case(
        "PUT",
        lambda t: f"/organizations/{t.world.org_a}",
        lambda t: {"description": "updated"},
        _by(401, 403, 403, 403, 200, 200, 404, 404),
    ),
    "delete organization": Case(
        "DELETE",
        lambda t: f"/organizations/{t.empty_org}",
        None,
        _by(401, 403, 403, 403, 403, 204, 403, 403),
    ),
    "list users": Case(
        "GET", lambda t: "/users", None, _by(401, 403, 403, 200, 200, 200, 403, 200)
    ),
    "create user": Case(
        "POST",
        lambda t: "/users",
        lambda t: {
            "email": f"{uuid.uuid4().hex[:8]}@example.com",
            "name": "New",
            "password": "long-enough-pass",
        },
        _by(401, 403, 403, 403, 201, 201, 403, 201),
    ),
    "get user": Case(
        "GET",
        lambda t: f"/users/{t.target_user}",
        None,
        _by(401, 403, 403, 200, 200, 200, 404, 404),
    ),
    "update user": Case(
        "PUT",
        lambda t: f"/users/{t.target_user}",
        lambda t: {"name": "Renamed"},
        _by(401, 403, 403, 403, 200, 200, 404, 404),
    ),
    "delete user": Case(
        "DELETE",
        lambda t: f"/users/{t.target_user}",
        None,
        _by(401, 403, 403, 403, 204, 204, 403, 404),
    ),
    "get user roles": Case(
        "GET",
        lambda t: f"/users/{t.target_user}/roles",
        None,
        _by(401, 403, 403, 200, 200, 200, 404, 404),
    ),
    "set user roles": Case(
        "PUT",
        lambda t: f"/users/{t.target_user}/roles",
        lambda t: {"role": "project_admin"},
        _by(401, 403, 403, 403, 200, 200, 403, 404),
    ),
    "list projects": Case(
        "GET", lambda t: "/projects", None, _by(401, 200, 200, 200, 200, 200, 200, 200)
    ),
    "create project": Case(
        "POST",
        lambda t: "/projects",
        lambda t: {"name": _unique("Project")},
        _by(401, 403, 403, 201, 201, 201, 403, 201),
    ),
    "get project": Case("GET", _project, None, _by(401, 200, 404, 200, 200, 200, 404, 404)),
    "update project": Case(
        "PUT",
        _project,
        lambda t: {"description": "changed"},
        _by(401, 403, 404, 200, 200, 200, 404, 404),
    ),
    "delete project": Case("DELETE", _project, None, _by(401, 403, 404, 204, 204, 204, 404, 404)),
    "list members": Case(
        "GET",
        lambda t: f"{_project(t)}/members",
        None,
        _by(401, 200, 404, 200, 200, 200, 404, 404),
    ),
    "add member": Case(
        "POST",
        lambda t: f"{_project(t)}/members",
        lambda t: {"user_id": str(t.target_user), "role": "viewer"},
        _by(401, 403, 404, 201, 201, 201, 404, 404),
    ),
    "change member role": Case(
        "PUT",
        lambda t: f"{_project(t)}/members/{t.world['user'].id}",
        lambda t: {"role": "viewer"},
        _by(401, 403, 404, 200, 200, 200, 404, 404),
    ),
    "remove member": Case(
        "DELETE",
        lambda t: f"{_project(t)}/members/{t.world['user'].id}",
        None,
        _by(401, 403, 404, 204, 204, 204, 404, 404),
    ),
    "create api key": Case(
        "POST",
        lambda t: f"{_project(t)}/api-keys",
        lambda t: {"name": _unique("key")},
        _by(401, 201, 404, 201, 201, 201, 404, 404),
    ),
    "list api keys": Case(
        "GET",
        lambda t: f"{_project(t)}/api-keys",
        None,
        _by(401, 200, 404, 200, 200, 200, 404, 404),
    ),
    "get api key": Case(
        "GET",
        lambda t: f"{_project(t)}/api-keys/{t.api_key}",
        None,
        _by(401, 200, 404, 200, 200, 200, 404, 404),
    ),
    "revoke api key": Case(
        "DELETE",
        lambda t: f"{_project(t)}/api-keys/{t.api_key}",
        None,
        _by(401, 204, 404, 204, 204, 204, 404, 404),
    ),
    "list notifications": Case("GET", lambda t: "/notifications", None, _EVERYONE),
    "notification unread count": Case(
        "GET", lambda t: "/notifications/unread-count", None, _EVERYONE
    ),
    "mark all notifications read": Case(
        "POST", lambda t: "/notifications/read-all", None, _EVERYONE
    ),
    "mark notification read": Case("POST", lambda t: f"{_notification(t)}/read", None, _OWNER_ONLY),
    "delete notification": Case(
        "DELETE", _notification, None, {"anonymous": 401, "user": 204, "*": 404}
    ),
    "list webhooks": Case(
        "GET", lambda t: "/webhooks", None, _by(401, 403, 403, 403, 200, 200, 403, 200)
    ),
    "create webhook": Case(
        "POST",
        lambda t: "/webhooks",
        lambda t: {"url": "https://hooks.example.com/budapp", "events": ["*"]},
        _by(401, 403, 403, 403, 201, 201, 403, 201),
    ),
    "get webhook": Case("GET", _webhook, None, _WEBHOOK_ADMINS),
    "update webhook": Case("PUT", _webhook, lambda t: {"description": "changed"}, _WEBHOOK_ADMINS),
    "delete webhook": Case("DELETE", _webhook, None, _by(401, 403, 403, 403, 204, 204, 403, 404)),
    "rotate webhook secret": Case(
        "POST", lambda t: f"{_webhook(t)}/rotate-secret", None, _WEBHOOK_ADMINS
    ),
    "test webhook": Case(
        "POST", lambda t: f"{_webhook(t)}/test", None, _by(401, 403, 403, 403, 202, 202, 403, 404)
    ),
    "list webhook deliveries": Case(
        "GET", lambda t: f"{_webhook(t)}/deliveries", None, _WEBHOOK_ADMINS
    ),
    # Clusters: seen by every member of their organization, managed by org admins. The
    # target is a `local` cluster, so onboard and sync need no network.
    "list clusters": Case(
        "GET", lambda t: "/clusters", None, _by(401, 200, 200, 200, 200, 200, 200, 200)
    ),
    "register cluster": Case(
        "POST",
        lambda t: "/clusters",
        lambda t: {
            "name": _unique("cluster"),
            "provider": "budcluster",
            "connection": {"base_url": "http://127.0.0.1:9"},
        },
        _by(401, 403, 403, 403, 201, 201, 403, 201),
    ),
    "get cluster": Case(
        "GET",
        lambda t: f"/clusters/{t.cluster}",
        None,
        _by(401, 200, 200, 200, 200, 200, 404, 404),
    ),
    "cluster status": Case(
        "GET",
        lambda t: f"/clusters/{t.cluster}/status",
        None,
        _by(401, 200, 200, 200, 200, 200, 404, 404),
    ),
    "onboard cluster": Case(
        "POST",
        lambda t: f"/clusters/{t.cluster}/onboard",
        None,
        _by(401, 403, 403, 403, 200, 200, 403, 404),
    ),
    "sync cluster": Case(
        "POST",
        lambda t: f"/clusters/{t.cluster}/sync",
        None,
        _by(401, 403, 403, 403, 200, 200, 403, 404),
    ),
    "delete cluster": Case(
        "DELETE",
        lambda t: f"/clusters/{t.cluster}",
        None,
        _by(401, 403, 403, 403, 204, 204, 403, 404),
    ),
    # Models and datasets belong to the organisation: viewing or managing them needs the
    # permission in some project (outsider: none), or the org_admin role.
    "list models": Case(
        "GET", lambda t: "/models", None, _by(401, 200, 403, 200, 200, 200, 200, 200)
    ),
    "models leaderboard": Case(
        "GET", lambda t: "/models/leaderboard", None, _by(401, 200, 403, 200, 200, 200, 200, 200)
    ),
    # The credential is organisation-wide: a developer cannot see it, hence 404.
    "create cloud model": Case(
        "POST",
        lambda t: "/models/cloud",
        lambda t: {
            "name": _unique("cloud"),
            "provider": "openai",
            "provider_model_id": "gpt-4o",
            "credential_id": str(t.credential),
        },
        _by(401, 404, 403, 201, 201, 201, 404, 404),
    ),
    "create local model": Case(
        "POST",
        lambda t: "/models/local",
        lambda t: {"name": _unique("local"), "repo_id": "org/model"},
        _by(401, 201, 403, 201, 201, 201, 201, 201),
    ),
    "create custom model": Case(
        "POST",
        lambda t: "/models/custom",
        lambda t: {"name": _unique("custom"), "uri": "s3://bucket/model/"},
        _by(401, 201, 403, 201, 201, 201, 201, 201),
    ),
    "get model": Case(
        "GET", lambda t: f"/models/{t.model}", None, _by(401, 200, 403, 200, 200, 200, 404, 404)
    ),
    "update model": Case(
        "PUT",
        lambda t: f"/models/{t.model}",
        lambda t: {"description": "changed"},
        _by(401, 200, 403, 200, 200, 200, 404, 404),
    ),
    "delete model": Case(
        "DELETE", lambda t: f"/models/{t.model}", None, _by(401, 204, 403, 204, 204, 204, 404, 404)
    ),
    "model scan override": Case(
        "POST",
        lambda t: f"/models/{t.failed_model}/scan-override",
        lambda t: {"reason": "reviewed and accepted by security"},
        _by(401, 403, 403, 403, 200, 200, 403, 404),
    ),
    "model deployable": Case(
        "GET",
        lambda t: f"/models/{t.model}/deployable",
        None,
        _by(401, 200, 403, 200, 200, 200, 404, 404),
    ),
    "download model file": Case(
        "GET",
        lambda t: f"/models/{t.model}/files/{t.model_file}",
        None,
        _by(401, 200, 403, 200, 200, 200, 404, 404),
    ),
    "list datasets": Case(
        "GET", lambda t: "/datasets", None, _by(401, 200, 403, 200, 200, 200, 200, 200)
    ),
    "upload dataset": Case(
        "POST",
        lambda t: "/datasets",
        None,
        _by(401, 201, 403, 201, 201, 201, 201, 201),
        upload=lambda: ({"name": _unique("data")}, {"file": ("d.jsonl", _jsonl())}),
    ),
    "get dataset": Case(
        "GET",
        lambda t: f"/datasets/{t.dataset}",
        None,
        _by(401, 200, 403, 200, 200, 200, 404, 404),
    ),
    "update dataset": Case(
        "PUT",
        lambda t: f"/datasets/{t.dataset}",
        lambda t: {"description": "changed"},
        _by(401, 200, 403, 200, 200, 200, 404, 404),
    ),
    "delete dataset": Case(
        "DELETE",
        lambda t: f"/datasets/{t.dataset}",
        None,
        _by(401, 204, 403, 204, 204, 204, 404, 404),
    ),
    "upload dataset version": Case(
        "POST",
        lambda t: f"/datasets/{t.dataset}/versions",
        None,
        _by(401, 201, 403, 201, 201, 201, 404, 404),
        upload=lambda: ({}, {"file": ("d.jsonl", _jsonl())}),
    ),
    "download dataset": Case(
        "GET",
        lambda t: f"/datasets/{t.dataset}/download",
        None,
        _by(401, 200, 403, 200, 200, 200, 404, 404),
    ),
    "create router": Case(
        "POST",
        lambda t: f"{_project(t)}/routers",
        lambda t: {
            "name": _unique("r").replace(" ", "-"),
            "targets": [{"kind": "url", "base_url": "http://127.0.0.1:9/v1"}],
        },
        _by(401, 201, 404, 201, 201, 201, 404, 404),
    ),
    "list routers": Case(
        "GET", lambda t: f"{_project(t)}/routers", None, _by(401, 200, 404, 200, 200, 200, 404, 404)
    ),
    "get router": Case(
        "GET",
        lambda t: f"{_project(t)}/routers/{t.router}",
        None,
        _by(401, 200, 404, 200, 200, 200, 404, 404),
    ),
    "update router": Case(
        "PATCH",
        lambda t: f"{_project(t)}/routers/{t.router}",
        lambda t: {"strategy": "round_robin"},
        _by(401, 200, 404, 200, 200, 200, 404, 404),
    ),
    "delete router": Case(
        "DELETE",
        lambda t: f"{_project(t)}/routers/{t.router}",
        None,
        _by(401, 204, 404, 204, 204, 204, 404, 404),
    ),
    "get rate limits": Case(
        "GET",
        lambda t: f"{_project(t)}/rate-limits",
        None,
        _by(401, 200, 404, 200, 200, 200, 404, 404),
    ),
    "set rate limits": Case(
        "PUT",
        lambda t: f"{_project(t)}/rate-limits",
        lambda t: {"rpm": 100, "key_rpm": 10},
        _by(401, 200, 404, 200, 200, 200, 404, 404),
    ),
    # Without a project_id, only org admins read usage (their own organization's).
    "usage of the organization": Case(
        "GET", lambda t: "/usage", None, _by(401, 403, 403, 403, 200, 200, 403, 200)
    ),
    # A user's access token is not an API key, whoever holds it.
    "current api key": Case(
        "GET", lambda t: "/api-keys/current", None, _by(401, 401, 401, 401, 401, 401, 401, 401)
    ),
}


def test_every_management_route_is_in_the_matrix(app: FastAPI) -> None:
    documented = {
        (method, path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        # Public routes; audit and credentials have matrices of their own in their test folders.
        if not path.startswith(
            (
                "/health",
                "/ready",
                "/auth/login",
                "/auth/refresh",
                "/auth/jwks",
                # Single sign-on's public steps and the service-token routes: tests/auth/sso.
                "/auth/oauth/providers",
                "/auth/oauth/login",
                "/auth/oauth/callback",
                "/auth/oauth/token",
                "/auth/oauth/backchannel-logout",
                "/internal",
                # Runs need a workflow behind them: tests/workflows/test_engine.py.
                "/workflows",
                # Endpoints need a model and an onboarded cluster: tests/endpoints.
                "/endpoints",
                "/audit",
                "/credentials",
                # Runs need a target behind them: tests/benchmarks/test_bad_input.py.
                "/benchmarks",
                "/projects/{project_id}/benchmarks",
            )
        )
    }
    probe = Targets(World(uuid.uuid4(), uuid.uuid4()), uuid.uuid4(), uuid.uuid4())
    probe.world.accounts["user"] = type("A", (), {"id": uuid.uuid4()})()  # type: ignore[assignment]
    covered = set()
    for case in CASES.values():
        concrete = case.path(probe)
        for method, template in documented:
            if method.upper() == case.method and _matches(template, concrete):
                covered.add((method, template))
    assert documented - covered == set()


async def _notify(app: FastAPI, world: World) -> uuid.UUID:
    async with session_scope(components(app).session_factory) as session:
        note = await notify(
            session,
            organization_id=world.org_a,
            user_id=world["user"].id,
            kind="endpoint.ready",
            title="Endpoint ready",
        )
    return note.id


def _matches(template: str, concrete: str) -> bool:
    left, right = template.strip("/").split("/"), concrete.strip("/").split("/")
    return len(left) == len(right) and all(
        a == b or (a.startswith("{") and a.endswith("}")) for a, b in zip(left, right, strict=True)
    )


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("case_name", list(CASES))
async def test_route_authorization(
    app: FastAPI, client: httpx.AsyncClient, world: World, case_name: str, actor: str
) -> None:
    case = CASES[case_name]
    target = await create_account(
        app, world.org_a, f"target-{uuid.uuid4().hex[:6]}@example.com", Role.USER
    )
    api_key = NO_KEY
    # Only API-key cases get a key: an active key rightly blocks deleting its project.
    if "api key" in case_name:
        created = await client.post(
            f"/projects/{world.project_a}/api-keys",
            json={"name": _unique("key")},
            headers=world["project_admin"].headers,
        )
        api_key = uuid.UUID(created.json()["data"]["id"])
    targets = Targets(world, target.id, await create_organization(app, _unique("Empty")), api_key)
    if "notification" in case_name:
        targets.notification = await _notify(app, world)
    if "webhook" in case_name:
        created = await client.post(
            "/webhooks",
            json={"url": "https://hooks.example.com/budapp", "events": ["*"]},
            headers=world["org_admin"].headers,
        )
        targets.webhook = uuid.UUID(created.json()["data"]["id"])
    if "cluster" in case_name:
        targets.cluster = await create_cluster(app, world.org_a, _unique("cluster"))
    if "router" in case_name:
        created = await client.post(
            f"/projects/{world.project_a}/routers",
            json={
                "name": f"r-{uuid.uuid4().hex[:8]}",
                "targets": [{"kind": "url", "base_url": "http://127.0.0.1:9/v1"}],
            },
            headers=world["project_admin"].headers,
        )
        targets.router = uuid.UUID(created.json()["data"]["id"])
    if "model" in case_name or "dataset" in case_name:
        await _catalog_targets(client, targets)
    headers = {} if actor == "anonymous" else world[actor].headers
    if case.upload is not None:
        data, files = case.upload()
        response = await client.request(
            case.method, case.path(targets), data=data, files=files, headers=headers
        )
    else:
        body = case.body(targets) if case.body else None
        response = await client.request(case.method, case.path(targets), json=body, headers=headers)
    assert response.status_code == case.status(actor), response.text
    if response.status_code >= 400:
        assert response.json()["error"]["code"] in {"UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND"}
