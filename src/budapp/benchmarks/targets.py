"""Resolving what a new benchmark targets, in the caller's scope: every id goes through its
own domain's service and must belong to the run's project (another tenant's, or another
project's, is not found); a user-given URL must be allowed and must answer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.benchmarks.environment import BenchmarkEnvironment
from budapp.benchmarks.models import TargetKind
from budapp.benchmarks.outbound import TargetRefused, check_url, probe
from budapp.benchmarks.schemas import EndpointTarget, RouterTarget, Target, UrlTarget
from budapp.core.errors import Conflict, InvalidInput, NotFound
from budapp.core.roles import Permission
from budapp.credentials.service import CredentialService, secrets_for_project
from budapp.endpoints.models import EndpointStatus
from budapp.endpoints.service import EndpointService, serving_replicas
from budapp.projects.service import ProjectAccess
from budapp.routers.service import RouterService

# Credentials whose key is a bearer token an OpenAI-compatible server takes.
BEARER_KINDS = ("openai", "openai_compatible")
OPENAI_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    kind: TargetKind
    model: str
    endpoint_id: uuid.UUID | None = None
    router_id: uuid.UUID | None = None
    credential_id: uuid.UUID | None = None
    url: str | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)


def _refused(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(message, details=[{"field": f"target.{field_name}", "message": message}])


class TargetCheck:
    def __init__(
        self,
        session: AsyncSession,
        endpoints: EndpointService,
        routers: RouterService,
        credentials: CredentialService,
        environment: BenchmarkEnvironment,
    ) -> None:
        self.session = session
        self.endpoints = endpoints
        self.routers = routers
        self.credentials = credentials
        self.environment = environment

    async def resolve(self, access: ProjectAccess, target: Target) -> ResolvedTarget:
        if isinstance(target, EndpointTarget):
            return await self._endpoint(access, target.endpoint_id)
        if isinstance(target, RouterTarget):
            return await self._router(access, target.router_id)
        return await self._url(access, target)

    async def _endpoint(self, access: ProjectAccess, endpoint_id: uuid.UUID) -> ResolvedTarget:
        endpoint = (
            await self.endpoints.access(endpoint_id, access.principal, Permission.ENDPOINT_VIEW)
        ).endpoint
        if endpoint.project_id != access.project.id:
            raise NotFound("endpoint", endpoint_id)
        urls, model = await serving_replicas(self.session, endpoint.id)
        if endpoint.status is not EndpointStatus.RUNNING or not urls:
            raise Conflict(
                f"Endpoint {endpoint.name} is {endpoint.status.value} with no ready replica: "
                "deploy it first"
            )
        snapshot = await self.endpoints.describe(endpoint, by=access.principal)
        snapshot["base_urls"] = urls
        return ResolvedTarget(
            TargetKind.ENDPOINT, model or endpoint.name, endpoint_id=endpoint.id, snapshot=snapshot
        )

    async def _router(self, access: ProjectAccess, router_id: uuid.UUID) -> ResolvedTarget:
        router = await self.routers.get(access, router_id)
        if self.environment.gateway_url is None:
            raise Conflict("The gateway is not served here and BUDAPP_GATEWAY_URL is not set")
        snapshot = {
            "router": {"id": str(router.id), "name": router.name, "strategy": router.strategy},
            "targets": [
                target.model_dump(mode="json", exclude_none=True, exclude={"credential_id"})
                for target in router.targets
            ],
            "gateway_url": self.environment.gateway_url,
        }
        return ResolvedTarget(
            TargetKind.ROUTER, router.name, router_id=router.id, snapshot=snapshot
        )

    async def _url(self, access: ProjectAccess, target: UrlTarget) -> ResolvedTarget:
        base_url = str(target.base_url).rstrip("/")
        try:
            await check_url(base_url, allow_private=self.environment.allow_private_urls)
        except TargetRefused as exc:
            raise _refused("base_url", str(exc)) from None
        key = None
        snapshot: dict[str, Any] = {"url": base_url, "model": target.model}
        if target.credential_id is not None:
            key = await self._credential_key(access, target.credential_id, base_url)
            snapshot["credential_id"] = str(target.credential_id)
        try:
            await probe(base_url, key)
        except TargetRefused as exc:
            raise _refused("base_url", str(exc)) from None
        return ResolvedTarget(
            TargetKind.URL,
            target.model,
            credential_id=target.credential_id,
            url=base_url,
            snapshot=snapshot,
        )

    async def _credential_key(
        self, access: ProjectAccess, credential_id: uuid.UUID, base_url: str
    ) -> str | None:
        """The credential's key, if the project may use it and it is bound to `base_url`:
        its secret is never sent anywhere else."""
        credential = (
            await self.credentials.access(
                credential_id, access.principal, Permission.CREDENTIAL_VIEW
            )
        ).credential
        project = access.project
        if credential.project_id not in (None, project.id):
            raise NotFound("credential", credential_id)
        if credential.kind not in BEARER_KINDS:
            raise _refused(
                "credential_id",
                f"a {credential.kind} credential has no bearer key: use "
                + " or ".join(BEARER_KINDS),
            )
        values = await credential_values(
            self.session, self.environment, project.organization_id, project.id, credential_id
        )
        if values is None:
            raise NotFound("credential", credential_id)
        bound = str(values.get("base_url") or OPENAI_BASE_URL).rstrip("/")
        if bound != base_url:
            raise _refused(
                "credential_id",
                f"the credential is bound to {bound}: its key is sent nowhere else",
            )
        key = values.get("api_key")
        return str(key) if key else None


async def credential_values(
    session: AsyncSession,
    environment: BenchmarkEnvironment,
    organization_id: uuid.UUID,
    project_id: uuid.UUID,
    credential_id: uuid.UUID,
) -> dict[str, Any] | None:
    return await secrets_for_project(
        session, environment.vault, organization_id, project_id, credential_id
    )
