from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from budapp.catalog.scanning import SCAN_WORKER
from budapp.catalog.service import ModelService
from budapp.catalog.uploads import ModelUploads
from budapp.core.components import STORAGE, components
from budapp.core.deps import SessionDep
from budapp.credentials.dependencies import CredentialServiceDep
from budapp.projects.dependencies import ProjectServiceDep


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


async def _uploads(request: Request, models: ModelServiceDep) -> ModelUploads:
    settings = components(request).settings
    return ModelUploads(models, file_max_bytes=settings.model_file_max_bytes)


ModelUploadsDep = Annotated[ModelUploads, Depends(_uploads)]
