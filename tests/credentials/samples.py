"""A valid spec of every credential kind, with secret values unique to each call so a test can
look for them anywhere (bodies, logs, rows), and helpers that read what the API cannot show."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.auth import system_scope
from budapp.core.components import PASSWORD_HASHER, components
from budapp.core.references import ReferenceGuard
from budapp.credentials.models import Credential
from budapp.credentials.service import VAULT, CredentialService
from budapp.organizations.service import OrganizationService
from budapp.projects.service import ProjectService
from budapp.users.service import UserService

CANARY = re.compile(r"canary-[a-z_]+-[0-9a-f]{32}")

# Written out rather than read from the spec classes: a secret field typed as plain text by
# mistake must fail these tests, not silently move to `config`.
SECRET_FIELDS: dict[str, set[str]] = {
    "openai": {"api_key"},
    "anthropic": {"api_key"},
    "azure_openai": {"api_key"},
    "aws_bedrock": {"aws_access_key_id", "aws_secret_access_key", "aws_session_token"},
    "huggingface": {"token"},
    "openai_compatible": {"api_key"},
    "aws": {"access_key_id", "secret_access_key", "session_token"},
    "azure": {"client_secret"},
    "gcp": {"service_account_json"},
    "kubeconfig": {"kubeconfig"},
}
CATEGORY = {
    kind: "cloud" if kind in {"aws", "azure", "gcp", "kubeconfig"} else "provider"
    for kind in SECRET_FIELDS
}


def canary(label: str) -> str:
    return f"canary-{label}-{uuid.uuid4().hex}"


def service_account_json(key_material: str, **overrides: Any) -> str:
    document = {
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": "0123456789abcdef",
        "private_key": f"-----BEGIN PRIVATE KEY-----\n{key_material}\n-----END PRIVATE KEY-----\n",
        "client_email": "deployer@demo-project.iam.gserviceaccount.com",
    }
    document.update(overrides)
    return json.dumps({k: v for k, v in document.items() if v is not None})


def kubeconfig_yaml(token: str, *, users: bool = True) -> str:
    user_section = f"users:\n- name: demo\n  user:\n    token: {token}" if users else ""
    return (
        "apiVersion: v1\nkind: Config\n"
        "clusters:\n- name: demo\n  cluster:\n    server: https://k8s.example.com:6443\n"
        "contexts:\n- name: demo\n  context:\n    cluster: demo\n    user: demo\n"
        f"current-context: demo\n{user_section}"
    )


@dataclass(frozen=True)
class Sample:
    spec: dict[str, Any]
    config: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.spec["kind"])

    @property
    def secrets(self) -> dict[str, str]:
        return {k: v for k, v in self.spec.items() if k in SECRET_FIELDS[self.kind]}

    @property
    def canaries(self) -> list[str]:
        return [found for value in self.secrets.values() for found in CANARY.findall(value)]


def sample(kind: str) -> Sample:  # noqa: PLR0911 - one branch per kind reads best
    if kind == "openai":
        config = {"organization": "org-demo", "base_url": "https://api.openai.example/v1"}
        return Sample({"kind": kind, "api_key": canary("openai"), **config}, config)
    if kind == "anthropic":
        config = {"base_url": "https://api.anthropic.example/v1"}
        return Sample({"kind": kind, "api_key": canary("anthropic"), **config}, config)
    if kind == "azure_openai":
        config = {
            "endpoint": "https://demo.openai.azure.example/v1",
            "api_version": "2024-06-01",
            "deployment": "gpt-demo",
        }
        return Sample({"kind": kind, "api_key": canary("azure_openai"), **config}, config)
    if kind == "aws_bedrock":
        secrets = {
            "aws_access_key_id": canary("bedrock_id"),
            "aws_secret_access_key": canary("bedrock_secret"),
            "aws_session_token": canary("bedrock_session"),
        }
        return Sample({"kind": kind, **secrets, "region": "us-east-1"}, {"region": "us-east-1"})
    if kind == "huggingface":
        return Sample({"kind": kind, "token": canary("huggingface")}, {})
    if kind == "openai_compatible":
        config = {"base_url": "https://llm.internal.example/v1"}
        return Sample({"kind": kind, "api_key": canary("compatible"), **config}, config)
    if kind == "aws":
        secrets = {
            "access_key_id": canary("aws_id"),
            "secret_access_key": canary("aws_secret"),
            "session_token": canary("aws_session"),
        }
        return Sample({"kind": kind, **secrets, "region": "eu-west-1"}, {"region": "eu-west-1"})
    if kind == "azure":
        config = {"tenant_id": "tenant-1", "client_id": "client-1", "subscription_id": "sub-1"}
        return Sample({"kind": kind, "client_secret": canary("azure"), **config}, config)
    if kind == "gcp":
        key = service_account_json(canary("gcp_private_key"))
        return Sample(
            {"kind": kind, "service_account_json": key, "project_id": "demo-project"},
            {"project_id": "demo-project"},
        )
    if kind == "kubeconfig":
        config = {"context": "demo"}
        return Sample(
            {"kind": kind, "kubeconfig": kubeconfig_yaml(canary("kube_token")), **config}, config
        )
    raise ValueError(f"no sample for {kind}")


def masked(value: str) -> str:
    return "****" + value[-4:] if len(value) >= 12 else "****"


async def create(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    spec: dict[str, Any],
    *,
    name: str | None = None,
    project_id: uuid.UUID | None = None,
    **extra: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"name": name or f"cred-{uuid.uuid4().hex[:8]}", "spec": spec, **extra}
    if project_id is not None:
        body["project_id"] = str(project_id)
    return await client.post("/credentials", json=body, headers=headers)


async def create_id(
    client: httpx.AsyncClient, headers: dict[str, str], spec: dict[str, Any], **kwargs: Any
) -> uuid.UUID:
    response = await create(client, headers, spec, **kwargs)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["data"]["id"])


def credential_service(app: FastAPI, session: AsyncSession) -> CredentialService:
    organizations = OrganizationService(session, ReferenceGuard())
    users = UserService(session, components(app)[PASSWORD_HASHER], organizations)
    projects = ProjectService(session, users, organizations, components(app).references)
    return CredentialService(
        session, components(app)[VAULT], projects, organizations, ReferenceGuard()
    )


async def reveal(app: FastAPI, credential_id: uuid.UUID) -> dict[str, Any]:
    async with components(app).session_factory() as session:
        return await credential_service(app, session).reveal(system_scope(), credential_id)


_TABLE = Credential.__table__


async def stored_row(app: FastAPI, credential_id: uuid.UUID) -> dict[str, Any]:
    """The row as the database holds it, deleted or not, read around the ORM."""
    async with components(app).engine.connect() as connection:
        result = await connection.execute(select(_TABLE).where(_TABLE.c.id == credential_id))
        return dict(result.mappings().one())


async def overwrite_row(app: FastAPI, credential_id: uuid.UUID, **values: Any) -> None:
    async with components(app).engine.begin() as connection:
        await connection.execute(update(_TABLE).where(_TABLE.c.id == credential_id).values(values))
