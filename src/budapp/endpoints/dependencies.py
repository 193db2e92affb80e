from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from budapp.catalog.dependencies import ModelServiceDep
from budapp.clusters.dependencies import ClusterServiceDep
from budapp.core.auth import CurrentPrincipal
from budapp.core.components import RUNTIME_TEMPLATES, components
from budapp.core.deps import SessionDep
from budapp.core.roles import Permission
from budapp.endpoints.schemas import EndpointCreate
from budapp.endpoints.service import EndpointAccess, EndpointService
from budapp.projects.dependencies import ProjectServiceDep
from budapp.projects.service import ProjectAccess
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


def endpoint_access(permission: Permission) -> Callable[..., Awaitable[EndpointAccess]]:
    """Dependency: the path's `endpoint_id`, its project visible to the caller, who holds
    `permission` there."""

    async def dependency(
        endpoint_id: uuid.UUID, principal: CurrentPrincipal, service: EndpointServiceDep
    ) -> EndpointAccess:
        return await service.access(endpoint_id, principal, permission)

    return dependency


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    """A create request and the project it names, where the caller holds endpoint:manage."""

    project: ProjectAccess
    body: EndpointCreate


async def _new_endpoint(
    body: EndpointCreate, principal: CurrentPrincipal, projects: ProjectServiceDep
) -> NewEndpoint:
    access = await projects.access(body.project_id, principal, Permission.ENDPOINT_MANAGE)
    return NewEndpoint(access, body)


EndpointReader = Annotated[EndpointAccess, Depends(endpoint_access(Permission.ENDPOINT_VIEW))]
EndpointManager = Annotated[EndpointAccess, Depends(endpoint_access(Permission.ENDPOINT_MANAGE))]
# Endpoints are listed from the projects where the caller may view them (all, for org admins).
EndpointsViewer = CurrentPrincipal
EndpointCreation = Annotated[NewEndpoint, Depends(_new_endpoint)]
