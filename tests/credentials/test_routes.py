"""The credentials API: what each kind accepts, how it reads back, how updates and deletes
behave, and who may do what (the matrix at the end, in the manner of
tests/test_authorization_matrix.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from budapp.core.components import components
from budapp.core.roles import ProjectRole, Role
from budapp.credentials.models import Credential
from budapp.credentials.service import VAULT
from budapp.credentials.specs import SPEC_BY_KIND
from tests.credentials.samples import (
    CATEGORY,
    SECRET_FIELDS,
    create,
    create_id,
    kubeconfig_yaml,
    masked,
    reveal,
    sample,
    service_account_json,
    stored_row,
)
from tests.factories import Account, World, create_account, create_project, login

KINDS = sorted(SPEC_BY_KIND)


async def count_credentials(app: FastAPI) -> int:
    async with components(app).engine.connect() as connection:
        return int(
            (await connection.execute(select(func.count()).select_from(Credential))).one()[0]
        )


# --- every kind ---------------------------------------------------------------------------------


def test_every_kind_has_a_sample() -> None:
    assert set(SECRET_FIELDS) == set(SPEC_BY_KIND)


@pytest.mark.parametrize("kind", KINDS)
async def test_every_kind_is_created_and_reads_back_masked(
    app: FastAPI, client: httpx.AsyncClient, world: World, kind: str
) -> None:
    given = sample(kind)
    response = await create(client, world["org_admin"].headers, given.spec, name=f"{kind} creds")
    assert response.status_code == 201, response.text
    created = response.json()["data"]
    fetched = await client.get(f"/credentials/{created['id']}", headers=world["org_admin"].headers)
    assert fetched.status_code == 200
    for read in (created, fetched.json()["data"]):
        assert read["kind"] == kind
        assert read["category"] == CATEGORY[kind]
        assert read["organization_id"] == str(world.org_a)
        assert read["project_id"] is None
        assert read["status"] == "ok"
        assert read["error"] is None
        assert read["config"] == given.config
        assert read["secrets"] == {name: masked(value) for name, value in given.secrets.items()}
        assert read["key_id"] == components(app)[VAULT].keyring.primary
    assert await reveal(app, uuid.UUID(created["id"])) == given.spec


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        ("hf_short", "****"),
        ("hf_elevenxx", "****"),
        ("hf_twelve012", "****e012"),
        ("hf_abcdefghijklmnop", "****mnop"),
    ],
)
async def test_mask_shows_the_last_four_characters_of_long_secrets_only(
    client: httpx.AsyncClient, world: World, token: str, shown: str
) -> None:
    response = await create(
        client, world["org_admin"].headers, {"kind": "huggingface", "token": token}
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["secrets"] == {"token": shown}


async def test_pasted_secret_is_stored_without_surrounding_whitespace(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    response = await create(
        client, world["org_admin"].headers, {"kind": "huggingface", "token": "  hf_pasted_token\n"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["secrets"] == {"token": "****oken"}
    assert await reveal(app, uuid.UUID(response.json()["data"]["id"])) == {
        "kind": "huggingface",
        "token": "hf_pasted_token",
    }


async def test_an_optional_secret_left_out_is_not_stored(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    spec = {"kind": "openai_compatible", "base_url": "https://llm.internal.example/v1"}
    response = await create(client, world["org_admin"].headers, spec)
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["secrets"] == {}
    assert data["config"] == {"base_url": "https://llm.internal.example/v1"}
    assert await reveal(app, uuid.UUID(data["id"])) == spec


# --- invalid input --------------------------------------------------------------------------


def _openai(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"kind": "openai", "api_key": "sk-valid-key-1234"}
    spec.update(changes)
    return {k: v for k, v in spec.items() if v is not None}


INVALID_SPECS: dict[str, Any] = {
    "unknown kind": {"kind": "dropbox", "api_key": "sk-valid-key-1234"},
    "no kind": {"api_key": "sk-valid-key-1234"},
    "missing secret": {"kind": "openai"},
    "missing config": {"kind": "aws", "access_key_id": "AKIA1", "secret_access_key": "s"},
    "extra field": _openai(api_secret="x"),
    "field of another kind": _openai(region="us-east-1"),
    "secret not a string": _openai(api_key=1234567890123),
    "secret a list": _openai(api_key=["sk-a", "sk-b"]),
    "config not a string": _openai(organization={"id": "org"}),
    "empty secret": _openai(api_key=""),
    "secret too long": _openai(api_key="k" * 4097),
    "config too long": _openai(organization="o" * 256),
    "url not a url": _openai(base_url="not a url"),
    "url not http": _openai(base_url="ftp://files.example.com"),
    "NUL in a secret": _openai(api_key="sk-\x00-hidden"),
    "spec not an object": "openai:sk-valid-key-1234",
    "service account not json": {"kind": "gcp", "service_account_json": "not json {"},
    "service account a list": {"kind": "gcp", "service_account_json": "[1, 2]"},
    "service account of another type": {
        "kind": "gcp",
        "service_account_json": service_account_json("k", type="authorized_user"),
    },
    "service account without private_key": {
        "kind": "gcp",
        "service_account_json": service_account_json("k", private_key=None),
    },
    "service account without client_email": {
        "kind": "gcp",
        "service_account_json": service_account_json("k", client_email=None),
    },
    "kubeconfig not yaml": {"kind": "kubeconfig", "kubeconfig": "clusters: [unclosed"},
    "kubeconfig a scalar": {"kind": "kubeconfig", "kubeconfig": "just a string"},
    "kubeconfig without users": {
        "kind": "kubeconfig",
        "kubeconfig": kubeconfig_yaml("t", users=False),
    },
    "kubeconfig with empty clusters": {
        "kind": "kubeconfig",
        "kubeconfig": "clusters: []\ncontexts:\n- name: a\nusers:\n- name: a\n",
    },
    "kubeconfig with clusters not a list": {
        "kind": "kubeconfig",
        "kubeconfig": "clusters: {a: 1}\ncontexts:\n- name: a\nusers:\n- name: a\n",
    },
}


@pytest.mark.parametrize("case", list(INVALID_SPECS))
async def test_invalid_spec_is_refused_and_nothing_stored(
    app: FastAPI, client: httpx.AsyncClient, world: World, case: str
) -> None:
    response = await create(client, world["org_admin"].headers, INVALID_SPECS[case])
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert await count_credentials(app) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "spec": _openai()},
        {"name": "n" * 256, "spec": _openai()},
        {"name": "ok", "description": "d" * 2001, "spec": _openai()},
        {"name": "ok"},
        {"name": "ok", "spec": _openai(), "kind": "openai"},
        {"name": "ok", "spec": _openai(), "project_id": "not-a-uuid"},
    ],
    ids=["empty name", "long name", "long description", "no spec", "extra field", "bad id"],
)
async def test_invalid_envelope_is_refused_and_nothing_stored(
    app: FastAPI, client: httpx.AsyncClient, world: World, body: dict[str, Any]
) -> None:
    response = await client.post("/credentials", json=body, headers=world["org_admin"].headers)
    assert response.status_code == 422, response.text
    assert await count_credentials(app) == 0


# --- names ----------------------------------------------------------------------------------


async def test_duplicate_name_in_an_organization_is_a_conflict(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    await create_id(client, headers, sample("openai").spec, name="shared")
    again = await create(client, headers, sample("anthropic").spec, name="shared")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "CONFLICT"
    in_project = await create(
        client, headers, sample("anthropic").spec, name="shared", project_id=world.project_a
    )
    assert in_project.status_code == 409
    assert await count_credentials(app) == 1


async def test_same_name_is_free_in_another_organization_and_after_delete(
    client: httpx.AsyncClient, world: World
) -> None:
    first = await create_id(client, world["org_admin"].headers, sample("openai").spec, name="n")
    other = await create(client, world["org_admin_b"].headers, sample("openai").spec, name="n")
    assert other.status_code == 201
    deleted = await client.delete(f"/credentials/{first}", headers=world["org_admin"].headers)
    assert deleted.status_code == 204
    again = await create(client, world["org_admin"].headers, sample("openai").spec, name="n")
    assert again.status_code == 201


async def test_rename_onto_a_taken_name_is_a_conflict(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    await create_id(client, headers, sample("openai").spec, name="taken")
    credential = await create_id(client, headers, sample("openai").spec, name="mine")
    response = await client.put(
        f"/credentials/{credential}", json={"name": "taken"}, headers=headers
    )
    assert response.status_code == 409
    same = await client.put(f"/credentials/{credential}", json={"name": "mine"}, headers=headers)
    assert same.status_code == 200


# --- updates --------------------------------------------------------------------------------


async def test_partial_update_keeps_the_secrets_left_out(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    given = sample("aws")
    headers = world["org_admin"].headers
    credential = await create_id(client, headers, given.spec)
    before = await stored_row(app, credential)

    response = await client.put(
        f"/credentials/{credential}",
        json={"description": "moved", "spec": {"region": "ap-south-1"}},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["config"] == {"region": "ap-south-1"}
    assert data["description"] == "moved"
    assert data["secrets"] == {k: masked(v) for k, v in given.secrets.items()}
    assert await reveal(app, credential) == {**given.spec, "region": "ap-south-1"}
    # Re-sealed with a fresh nonce, under the same key.
    after = await stored_row(app, credential)
    assert after["ciphertext"] != before["ciphertext"]
    assert after["key_id"] == before["key_id"]

    rotated = "rotated-secret-access-key-42"
    response = await client.put(
        f"/credentials/{credential}",
        json={"spec": {"kind": "aws", "secret_access_key": rotated}},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["secrets"]["secret_access_key"] == masked(rotated)
    assert await reveal(app, credential) == {
        **given.spec,
        "region": "ap-south-1",
        "secret_access_key": rotated,
    }


async def test_update_without_spec_leaves_the_secret_untouched(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    given = sample("huggingface")
    credential = await create_id(client, world["org_admin"].headers, given.spec)
    before = await stored_row(app, credential)
    response = await client.put(
        f"/credentials/{credential}", json={"name": "renamed"}, headers=world["org_admin"].headers
    )
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "renamed"
    assert (await stored_row(app, credential))["ciphertext"] == before["ciphertext"]
    assert await reveal(app, credential) == given.spec


async def test_null_clears_an_optional_secret(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    given = sample("aws")
    credential = await create_id(client, world["org_admin"].headers, given.spec)
    response = await client.put(
        f"/credentials/{credential}",
        json={"spec": {"session_token": None}},
        headers=world["org_admin"].headers,
    )
    assert response.status_code == 200, response.text
    assert "session_token" not in response.json()["data"]["secrets"]
    revealed = await reveal(app, credential)
    assert "session_token" not in revealed
    assert revealed["secret_access_key"] == given.secrets["secret_access_key"]


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "azure"},
        {"kind": "openai", "api_key": "sk-other-kind-key"},
        {"access_key_id": ""},
        {"region": "r" * 256},
        {"region": 42},
        {"api_key": "belongs-to-openai"},
        {"secret_access_key": "k" * 4097},
    ],
    ids=[
        "kind changed",
        "kind changed with its fields",
        "empty secret",
        "long config",
        "wrong type",
        "unknown field",
        "long secret",
    ],
)
async def test_invalid_update_is_refused_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, world: World, spec: dict[str, Any]
) -> None:
    given = sample("aws")
    credential = await create_id(client, world["org_admin"].headers, given.spec)
    before = await stored_row(app, credential)
    response = await client.put(
        f"/credentials/{credential}",
        json={"name": "should not stick", "spec": spec},
        headers=world["org_admin"].headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    after = await stored_row(app, credential)
    assert after["ciphertext"] == before["ciphertext"]
    assert after["name"] == before["name"]
    assert after["kind"] == "aws"
    assert await reveal(app, credential) == given.spec


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("gcp", {"service_account_json": '{"type": "service_account"}'}),
        ("kubeconfig", {"kubeconfig": "clusters: []"}),
    ],
)
async def test_update_validates_documents_like_create(
    app: FastAPI, client: httpx.AsyncClient, world: World, kind: str, spec: dict[str, Any]
) -> None:
    given = sample(kind)
    credential = await create_id(client, world["org_admin"].headers, given.spec)
    response = await client.put(
        f"/credentials/{credential}", json={"spec": spec}, headers=world["org_admin"].headers
    )
    assert response.status_code == 422, response.text
    assert await reveal(app, credential) == given.spec


# --- deletes --------------------------------------------------------------------------------


async def test_delete_hides_the_credential_and_erases_its_secret(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    credential = await create_id(client, headers, sample("openai").spec)
    assert (await stored_row(app, credential))["ciphertext"]

    response = await client.delete(f"/credentials/{credential}", headers=headers)
    assert response.status_code == 204
    assert (await client.get(f"/credentials/{credential}", headers=headers)).status_code == 404
    assert (await client.delete(f"/credentials/{credential}", headers=headers)).status_code == 404
    listed = await client.get("/credentials", headers=headers)
    assert listed.json()["meta"]["total"] == 0
    row = await stored_row(app, credential)
    assert row["deleted_at"] is not None
    assert row["ciphertext"] is None
    assert row["key_id"] is None


async def test_project_credential_blocks_deleting_its_project(
    client: httpx.AsyncClient, world: World
) -> None:
    admin = world["org_admin"].headers
    credential = await create_id(
        client, world["project_admin"].headers, sample("openai").spec, project_id=world.project_a
    )
    refused = await client.delete(f"/projects/{world.project_a}", headers=admin)
    assert refused.status_code == 409, refused.text
    assert "credential" in refused.json()["error"]["message"]
    assert (await client.get(f"/projects/{world.project_a}", headers=admin)).status_code == 200

    assert (await client.delete(f"/credentials/{credential}", headers=admin)).status_code == 204
    assert (await client.delete(f"/projects/{world.project_a}", headers=admin)).status_code == 204


async def test_organization_wide_credential_does_not_block_a_project(
    client: httpx.AsyncClient, world: World
) -> None:
    await create_id(client, world["org_admin"].headers, sample("openai").spec)
    response = await client.delete(
        f"/projects/{world.project_a}", headers=world["org_admin"].headers
    )
    assert response.status_code == 204


# --- placement and filters ------------------------------------------------------------------


async def test_project_credential_reads_back_with_its_project(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await create(
        client, world["project_admin"].headers, sample("gcp").spec, project_id=world.project_a
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["project_id"] == str(world.project_a)


async def test_super_admin_creates_in_another_organization(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await create(
        client,
        world["super_admin"].headers,
        sample("openai").spec,
        organization_id=str(world.org_b),
        project_id=world.project_b,
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["organization_id"] == str(world.org_b)
    seen = await client.get("/credentials", headers=world["org_admin_b"].headers)
    assert [c["id"] for c in seen.json()["data"]] == [response.json()["data"]["id"]]


async def test_org_admin_cannot_create_in_another_organization(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    response = await create(
        client, world["org_admin"].headers, sample("openai").spec, organization_id=str(world.org_b)
    )
    assert response.status_code == 404
    mismatched = await create(
        client, world["super_admin"].headers, sample("openai").spec, project_id=world.project_b
    )
    assert mismatched.status_code == 404
    assert await count_credentials(app) == 0


async def test_list_filters_by_kind_category_and_project(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    openai = await create_id(client, headers, sample("openai").spec)
    aws = await create_id(client, headers, sample("aws").spec, project_id=world.project_a)
    kube = await create_id(client, headers, sample("kubeconfig").spec)

    async def ids(**params: str) -> set[str]:
        response = await client.get("/credentials", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["data"]}

    assert await ids() == {str(openai), str(aws), str(kube)}
    assert await ids(kind="openai") == {str(openai)}
    assert await ids(category="cloud") == {str(aws), str(kube)}
    assert await ids(project_id=str(world.project_a)) == {str(aws)}
    assert await ids(category="provider", kind="aws") == set()


# --- authorization matrix -------------------------------------------------------------------

ACTORS = [
    "anonymous",
    "user",  # developer member of project A
    "viewer",  # viewer member of project A
    "member_admin",  # plain user, admin member of project A
    "outsider",  # user of A in no project
    "project_admin",  # project_admin role, admin member of project A
    "org_admin",
    "super_admin",
    "user_b",
    "org_admin_b",
]


@dataclass
class Targets:
    world: World
    accounts: dict[str, Account]
    organization_wide: uuid.UUID
    in_project: uuid.UUID


@dataclass(frozen=True)
class Case:
    method: str
    path: Callable[[Targets], str]
    body: Callable[[Targets], dict[str, Any]] | None
    expected: dict[str, int]
    target: Callable[[Targets], uuid.UUID] | None = None


def _by(*statuses: int) -> dict[str, int]:
    return dict(zip(ACTORS, statuses, strict=True))


def _org_wide(t: Targets) -> uuid.UUID:
    return t.organization_wide


def _in_project(t: Targets) -> uuid.UUID:
    return t.in_project


def _update_body(t: Targets) -> dict[str, Any]:
    return {"description": "changed", "spec": {"api_key": "sk-replaced-by-the-caller"}}


#                  anon user view madm outs padm oadm sadm usrb oadmb
CASES: dict[str, Case] = {
    "list": Case(
        "GET", lambda t: "/credentials", None, _by(401, 200, 200, 200, 200, 200, 200, 200, 200, 200)
    ),
    "create organization-wide": Case(
        "POST",
        lambda t: "/credentials",
        lambda t: {"name": f"new {uuid.uuid4().hex[:6]}", "spec": sample("openai").spec},
        _by(401, 403, 403, 403, 403, 403, 201, 201, 403, 201),
    ),
    "create in project": Case(
        "POST",
        lambda t: "/credentials",
        lambda t: {
            "name": f"new {uuid.uuid4().hex[:6]}",
            "project_id": str(t.world.project_a),
            "spec": sample("openai").spec,
        },
        _by(401, 403, 403, 201, 404, 201, 201, 201, 404, 404),
    ),
    "get organization-wide": Case(
        "GET",
        lambda t: f"/credentials/{t.organization_wide}",
        None,
        _by(401, 404, 404, 404, 404, 200, 200, 200, 404, 404),
    ),
    "update organization-wide": Case(
        "PUT",
        lambda t: f"/credentials/{t.organization_wide}",
        _update_body,
        _by(401, 404, 404, 404, 404, 403, 200, 200, 404, 404),
        _org_wide,
    ),
    "delete organization-wide": Case(
        "DELETE",
        lambda t: f"/credentials/{t.organization_wide}",
        None,
        _by(401, 404, 404, 404, 404, 403, 204, 204, 404, 404),
        _org_wide,
    ),
    "get in project": Case(
        "GET",
        lambda t: f"/credentials/{t.in_project}",
        None,
        _by(401, 200, 200, 200, 404, 200, 200, 200, 404, 404),
    ),
    "update in project": Case(
        "PUT",
        lambda t: f"/credentials/{t.in_project}",
        _update_body,
        _by(401, 403, 403, 200, 404, 200, 200, 200, 404, 404),
        _in_project,
    ),
    "delete in project": Case(
        "DELETE",
        lambda t: f"/credentials/{t.in_project}",
        None,
        _by(401, 403, 403, 204, 404, 204, 204, 204, 404, 404),
        _in_project,
    ),
}


async def _cast(app: FastAPI, client: httpx.AsyncClient, world: World) -> dict[str, Account]:
    """The world's accounts plus two plain users of A: a viewer and an admin of project A."""
    accounts = dict(world.accounts)
    for name, role in (("viewer", ProjectRole.VIEWER), ("member_admin", ProjectRole.ADMIN)):
        account = await create_account(app, world.org_a, f"{name}@example.com", Role.USER)
        added = await client.post(
            f"/projects/{world.project_a}/members",
            json={"user_id": str(account.id), "role": role.value},
            headers=world["org_admin"].headers,
        )
        assert added.status_code == 201, added.text
        accounts[name] = await login(client, account)
    return accounts


@pytest.fixture
async def targets(app: FastAPI, client: httpx.AsyncClient, world: World) -> Targets:
    accounts = await _cast(app, client, world)
    headers = world["org_admin"].headers
    return Targets(
        world,
        accounts,
        organization_wide=await create_id(client, headers, sample("openai").spec, name="wide"),
        in_project=await create_id(
            client, headers, sample("openai").spec, name="scoped", project_id=world.project_a
        ),
    )


def test_every_credential_route_is_in_the_matrix(app: FastAPI) -> None:
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if path.startswith("/credentials")
    }
    probe = Targets(World(uuid.uuid4(), uuid.uuid4()), {}, uuid.uuid4(), uuid.uuid4())

    def template(path: str) -> str:
        for credential in (probe.organization_wide, probe.in_project):
            path = path.replace(str(credential), "{credential_id}")
        return path

    covered = {(case.method, template(case.path(probe))) for case in CASES.values()}
    assert documented
    assert documented <= covered


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("case_name", list(CASES))
async def test_credential_route_authorization(
    client: httpx.AsyncClient, targets: Targets, case_name: str, actor: str
) -> None:
    case = CASES[case_name]
    headers = {} if actor == "anonymous" else targets.accounts[actor].headers
    body = case.body(targets) if case.body else None
    response = await client.request(case.method, case.path(targets), json=body, headers=headers)
    assert response.status_code == case.expected[actor], response.text
    if response.status_code >= 400:
        assert response.json()["error"]["code"] in {"UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND"}
    if case.target is not None and response.status_code >= 400:
        # A refused change leaves the credential as it was.
        target = case.target(targets)
        after = await client.get(
            f"/credentials/{target}", headers=targets.accounts["org_admin"].headers
        )
        assert after.status_code == 200
        assert after.json()["data"]["description"] is None


async def test_list_shows_each_caller_what_it_may_see(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    accounts = await _cast(app, client, world)
    admin_a, admin_b = world["org_admin"].headers, world["org_admin_b"].headers
    other_project = await create_project(app, world.org_a, "Project A2", {})
    wide_a = await create_id(client, admin_a, sample("openai").spec, name="wide a")
    in_a = await create_id(client, admin_a, sample("aws").spec, project_id=world.project_a)
    in_a2 = await create_id(client, admin_a, sample("gcp").spec, project_id=other_project)
    wide_b = await create_id(client, admin_b, sample("openai").spec, name="wide b")
    in_b = await create_id(client, admin_b, sample("azure").spec, project_id=world.project_b)
    expected = {
        "user": {in_a},
        "viewer": {in_a},
        "member_admin": {in_a},
        "outsider": set(),
        "project_admin": {wide_a, in_a},
        "org_admin": {wide_a, in_a, in_a2},
        "super_admin": {wide_a, in_a, in_a2, wide_b, in_b},
        "user_b": {in_b},
        "org_admin_b": {wide_b, in_b},
    }
    for actor, visible in expected.items():
        response = await client.get("/credentials", headers=accounts[actor].headers)
        assert response.status_code == 200, (actor, response.text)
        seen = {uuid.UUID(item["id"]) for item in response.json()["data"]}
        assert seen == visible, actor
        assert response.json()["meta"]["total"] == len(visible), actor
        for credential in visible:
            single = await client.get(f"/credentials/{credential}", headers=accounts[actor].headers)
            assert single.status_code == 200, (actor, credential)
