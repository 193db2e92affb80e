from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from budapp.catalog.scanning import SCAN_WORKER
from budapp.catalog.service import ModelAccess, ModelService
from budapp.catalog.uploads import ModelUploads
from budapp.core.auth import CurrentPrincipal, Principal
from budapp.core.components import STORAGE, components
from budapp.core.deps import SessionDep
from budapp.core.errors import Forbidden
from budapp.core.roles import Permission, Role
from budapp.credentials.dependencies import CredentialServiceDep
from budapp.projects.dependencies import ProjectServiceDep, in_any_project


async def _service(
    request: Request,
    session: SessionDep,
    projects: ProjectServiceDep,
    credentials: CredentialServiceDep,
) -> ModelService:
    state = components(request)
    return ModelService(
        session, state[STORAGE], projects, credentials, state.references, scans=state[SCAN_WORKER]
    )


ModelServiceDep = Annotated[ModelService, Depends(_service)]


def model_access(permission: Permission) -> Callable[..., Awaitable[ModelAccess]]:
    """Dependency: the path's `model_id`, in the caller's organisation, who holds
    `permission` in a project."""

    async def dependency(
        model_id: uuid.UUID, principal: CurrentPrincipal, service: ModelServiceDep
    ) -> ModelAccess:
        return await service.access(model_id, principal, permission)

    return dependency


async def _scan_overrider(
    model_id: uuid.UUID, principal: CurrentPrincipal, service: ModelServiceDep
) -> ModelAccess:
    if not principal.has_role(Role.ORG_ADMIN):
        raise Forbidden("Only an org admin may override a failed scan")
    return await service.access(model_id, principal, Permission.MODEL_MANAGE)


ModelsViewer = Annotated[Principal, Depends(in_any_project(Permission.MODEL_VIEW))]
ModelsManager = Annotated[Principal, Depends(in_any_project(Permission.MODEL_MANAGE))]
ModelReader = Annotated[ModelAccess, Depends(model_access(Permission.MODEL_VIEW))]
ModelManager = Annotated[ModelAccess, Depends(model_access(Permission.MODEL_MANAGE))]
# Org admins only: allow deploying a model whose scan failed.
ScanOverrider = Annotated[ModelAccess, Depends(_scan_overrider)]


async def _uploads(request: Request, models: ModelServiceDep) -> ModelUploads:
    settings = components(request).settings
    return ModelUploads(models, file_max_bytes=settings.model_file_max_bytes)


ModelUploadsDep = Annotated[ModelUploads, Depends(_uploads)]
