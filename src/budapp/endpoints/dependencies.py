from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from budapp.catalog.dependencies import ModelServiceDep
from budapp.clusters.dependencies import ClusterServiceDep
from budapp.core.components import RUNTIME_TEMPLATES, components
from budapp.core.deps import SessionDep
from budapp.endpoints.service import EndpointService
from budapp.projects.dependencies import ProjectServiceDep
from budapp.workflows.dependencies import WorkflowServiceDep


async def _service(  # noqa: PLR0917 - the domains an endpoint ties together
    request: Request,
    session: SessionDep,
    projects: ProjectServiceDep,
    models: ModelServiceDep,
    clusters: ClusterServiceDep,
    workflows: WorkflowServiceDep,
) -> EndpointService:
    return EndpointService(
        session, projects, models, clusters, workflows, components(request)[RUNTIME_TEMPLATES]
    )


EndpointServiceDep = Annotated[EndpointService, Depends(_service)]
