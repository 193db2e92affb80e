from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from budapp.core.auth import CurrentPrincipal, Principal
from budapp.core.components import STORAGE, components
from budapp.core.deps import SessionDep
from budapp.core.roles import Permission
from budapp.datasets.service import DatasetAccess, DatasetLimits, DatasetService
from budapp.projects.dependencies import ProjectServiceDep, in_any_project


async def _service(
    request: Request, session: SessionDep, projects: ProjectServiceDep
) -> DatasetService:
    state = components(request)
    settings = state.settings
    limits = DatasetLimits(
        max_bytes=settings.dataset_max_bytes,
        max_rows=settings.dataset_max_rows,
        preview_rows=settings.dataset_preview_rows,
        spool=settings.data_dir / "spool",
    )
    return DatasetService(session, state[STORAGE], projects, state.references, limits)


DatasetServiceDep = Annotated[DatasetService, Depends(_service)]


def dataset_access(permission: Permission) -> Callable[..., Awaitable[DatasetAccess]]:
    """Dependency: the path's `dataset_id`, in the caller's organisation, who holds
    `permission` in a project."""

    async def dependency(
        dataset_id: uuid.UUID, principal: CurrentPrincipal, service: DatasetServiceDep
    ) -> DatasetAccess:
        return await service.access(dataset_id, principal, permission)

    return dependency


DatasetsViewer = Annotated[Principal, Depends(in_any_project(Permission.DATASET_VIEW))]
DatasetsManager = Annotated[Principal, Depends(in_any_project(Permission.DATASET_MANAGE))]
DatasetReader = Annotated[DatasetAccess, Depends(dataset_access(Permission.DATASET_VIEW))]
DatasetManager = Annotated[DatasetAccess, Depends(dataset_access(Permission.DATASET_MANAGE))]
