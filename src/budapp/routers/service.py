from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.adapters.events import EventBus
from budapp.catalog.models import ModelSource
from budapp.catalog.service import load_model
from budapp.core.db import after_commit, utcnow
from budapp.core.envelope import Page
from budapp.core.errors import Conflict, InvalidInput, NotFound
from budapp.core.roles import Permission
from budapp.credentials.service import CredentialService, secrets_for_project
from budapp.projects.service import ProjectAccess
from budapp.routers.models import ProjectRateLimit, Router
from budapp.routers.repository import RouterRepository
from budapp.routers.schemas import (
    RateLimitsRead,
    RateLimitsUpdate,
    RouterCreate,
    RouterFilter,
    RouterRead,
    RouterUpdate,
    Target,
    UrlTarget,
)

# Every replica's gateway drops its cached configuration of the project on this event.
CHANGED_TOPIC = "routers.changed"
# The credential kinds (and cloud model providers) the gateway can call; the gateway's
# `providers` package has an adapter for each.
CALLABLE_KINDS = ("openai", "openai_compatible", "azure_openai", "anthropic")


def _target_json(target: Target) -> dict[str, Any]:
    return target.model_dump(mode="json", exclude_none=True)


def _read(router: Router) -> RouterRead:
    return RouterRead.model_validate(router)


class RouterService:
    def __init__(
        self, session: AsyncSession, bus: EventBus, credentials: CredentialService
    ) -> None:
        self.session = session
        self.repository = RouterRepository(session)
        self.bus = bus
        self.credentials = credentials

    async def create(self, access: ProjectAccess, data: RouterCreate) -> RouterRead:
        project = access.project
        await self._ensure_name_free(project.id, data.name)
        await self._check_targets(access, data.targets)
        router = Router(
            organization_id=project.organization_id,
            project_id=project.id,
            name=data.name,
            description=data.description,
            strategy=data.strategy,
            targets=[_target_json(t) for t in data.targets],
            fallback_on=list(data.fallback_on),
            cooldown_seconds=data.cooldown_seconds,
            max_attempts=data.max_attempts,
            created_by=access.principal.user_id,
        )
        self.repository.add(router)
        await self.session.flush()
        self._announce(project.id)
        return _read(router)

    async def page(self, access: ProjectAccess, filters: RouterFilter) -> Page[RouterRead]:
        rows, total = await self.repository.page(access.project.id, filters)
        return Page([_read(row) for row in rows], total, filters)

    async def get(self, access: ProjectAccess, router_id: uuid.UUID) -> RouterRead:
        return _read(await self._router(access, router_id))

    async def update(
        self, access: ProjectAccess, router_id: uuid.UUID, data: RouterUpdate
    ) -> RouterRead:
        router = await self._router(access, router_id)
        changes = data.model_dump(exclude_unset=True)
        if data.name is not None and data.name != router.name:
            await self._ensure_name_free(router.project_id, data.name)
        if data.targets is not None:
            await self._check_targets(access, data.targets)
            changes["targets"] = [_target_json(t) for t in data.targets]
        for name, value in changes.items():
            setattr(router, name, value)
        await self.session.flush()
        self._announce(router.project_id)
        return _read(router)

    async def delete(self, access: ProjectAccess, router_id: uuid.UUID) -> None:
        router = await self._router(access, router_id)
        router.deleted_at = utcnow()
        await self.session.flush()
        self._announce(router.project_id)

    async def limits(self, access: ProjectAccess) -> RateLimitsRead:
        row = await self.repository.limits(access.project.id)
        if row is None:
            return RateLimitsRead(
                project_id=access.project.id, rpm=None, tpm=None, key_rpm=None, key_tpm=None
            )
        return RateLimitsRead.model_validate(row)

    async def set_limits(self, access: ProjectAccess, data: RateLimitsUpdate) -> RateLimitsRead:
        project = access.project
        row = await self.repository.limits(project.id)
        if row is None:
            row = ProjectRateLimit(organization_id=project.organization_id, project_id=project.id)
            self.repository.add(row)
        for name, value in data.model_dump().items():
            setattr(row, name, value)
        await self.session.flush()
        self._announce(project.id)
        return RateLimitsRead.model_validate(row)

    async def _router(self, access: ProjectAccess, router_id: uuid.UUID) -> Router:
        router = await self.repository.get(access.project.id, router_id)
        if router is None:
            raise NotFound("router", router_id)
        return router

    async def _ensure_name_free(self, project_id: uuid.UUID, name: str) -> None:
        if await self.repository.by_name(project_id, name) is not None:
            raise Conflict(f"A router named {name!r} already exists in this project")

    async def _check_targets(self, access: ProjectAccess, targets: list[Target]) -> None:
        for index, target in enumerate(targets):
            if isinstance(target, UrlTarget) and target.credential_id is not None:
                await self._check_credential(access, index, target.credential_id)
            elif target.kind == "model":
                await self._check_model(access, index, target.model_id)

    async def _check_credential(
        self, access: ProjectAccess, index: int, credential_id: uuid.UUID
    ) -> None:
        """A url target's credential must be one the caller may see, the project may use and
        the gateway can call with."""
        credential = (
            await self.credentials.access(
                credential_id, access.principal, Permission.CREDENTIAL_VIEW
            )
        ).credential
        if credential.project_id not in (None, access.project.id):
            raise NotFound("credential", credential_id)
        if credential.kind not in CALLABLE_KINDS:
            raise _invalid(
                index,
                "credential_id",
                f"a {credential.kind} credential cannot call a target: use one of "
                + ", ".join(CALLABLE_KINDS),
            )

    async def _check_model(self, access: ProjectAccess, index: int, model_id: uuid.UUID) -> None:
        """A model target names a cloud model of the router's organization whose credential
        the project may use (the model grants its use: the caller need not see it)."""
        project = access.project
        model = await load_model(self.session, model_id)
        if model is None or model.organization_id != project.organization_id:
            raise NotFound("model", model_id)
        if model.source is not ModelSource.CLOUD:
            raise _invalid(
                index,
                "model_id",
                f"model {model.name!r} is a {model.source} model: only cloud models are called "
                "through their provider (deploy it and use an endpoint target)",
            )
        if model.provider not in CALLABLE_KINDS:
            raise _invalid(
                index, "model_id", f"the gateway cannot call {model.provider} models yet"
            )
        usable = model.credential_id is not None and await secrets_for_project(
            self.session,
            self.credentials.vault,
            project.organization_id,
            project.id,
            model.credential_id,
        )
        if not usable:
            raise _invalid(
                index,
                "model_id",
                f"the credential of model {model.name!r} cannot be used by this project "
                "(it belongs to another project, was deleted or cannot be read)",
            )

    def _announce(self, project_id: uuid.UUID) -> None:
        async def announce() -> None:
            await self.bus.publish(CHANGED_TOPIC, {"project_id": str(project_id)})

        after_commit(self.session, announce)


def _invalid(index: int, field: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"Target {index}: {message}",
        details=[{"field": f"targets.{index}.{field}", "message": message}],
    )


async def routing_table(
    session: AsyncSession, project_id: uuid.UUID
) -> tuple[list[Router], ProjectRateLimit | None]:
    """What the gateway caches of a project: its live routers and its limits."""
    repository = RouterRepository(session)
    return await repository.all_of_project(project_id), await repository.limits(project_id)


async def routers_of_project(session: AsyncSession, project_id: uuid.UUID) -> str | None:
    """A project whose routers still take calls is not deleted from under its clients."""
    count = await RouterRepository(session).count_of_project(project_id)
    return f"{count} router(s)" if count else None
