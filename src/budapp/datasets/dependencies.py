from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from budapp.core.components import STORAGE, components
from budapp.core.deps import SessionDep
from budapp.datasets.service import DatasetLimits, DatasetService
from budapp.projects.dependencies import ProjectServiceDep


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
