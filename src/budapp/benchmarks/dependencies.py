from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Query, Request

from budapp.api_keys.service import ApiKeyService
from budapp.benchmarks.environment import BENCHMARK_ENVIRONMENT
from budapp.benchmarks.service import BenchmarkAccess, BenchmarkService
from budapp.benchmarks.targets import TargetCheck
from budapp.core.auth import CurrentPrincipal
from budapp.core.components import components
from budapp.core.deps import SessionDep
from budapp.core.roles import Permission
from budapp.credentials.dependencies import CredentialServiceDep
from budapp.datasets.dependencies import DatasetServiceDep
from budapp.endpoints.dependencies import EndpointServiceDep
from budapp.projects.dependencies import ProjectServiceDep, project_access
from budapp.projects.service import ProjectAccess
from budapp.routers.dependencies import RouterServiceDep
from budapp.workflows.dependencies import WorkflowServiceDep


async def _service(  # noqa: PLR0917 - the domains a benchmark ties together
    request: Request,
    session: SessionDep,
    projects: ProjectServiceDep,
    endpoints: EndpointServiceDep,
    routers: RouterServiceDep,
    credentials: CredentialServiceDep,
    datasets: DatasetServiceDep,
    workflows: WorkflowServiceDep,
) -> BenchmarkService:
    environment = components(request)[BENCHMARK_ENVIRONMENT]
    return BenchmarkService(
        session,
        projects=projects,
        targets=TargetCheck(session, endpoints, routers, credentials, environment),
        workflows=workflows,
        datasets=datasets,
        api_keys=ApiKeyService(session, components(request).event_bus),
        environment=environment,
    )


BenchmarkServiceDep = Annotated[BenchmarkService, Depends(_service)]
BenchmarksViewer = Annotated[ProjectAccess, Depends(project_access(Permission.BENCHMARK_VIEW))]
BenchmarksManager = Annotated[ProjectAccess, Depends(project_access(Permission.BENCHMARK_MANAGE))]


def benchmark_access(permission: Permission) -> Callable[..., Awaitable[BenchmarkAccess]]:
    """Dependency: the path's benchmark, found in the caller's scope (another tenant's is not
    found), with `permission` on its project (else 403)."""

    async def dependency(
        benchmark_id: uuid.UUID, principal: CurrentPrincipal, service: BenchmarkServiceDep
    ) -> BenchmarkAccess:
        return await service.access(benchmark_id, principal, permission)

    return dependency


async def _compared(
    principal: CurrentPrincipal,
    service: BenchmarkServiceDep,
    ids: Annotated[list[uuid.UUID], Query(min_length=2, max_length=10)],
) -> list[BenchmarkAccess]:
    """Every `ids` run, each resolved as `BenchmarkReader` resolves one."""
    return [await service.access(run_id, principal, Permission.BENCHMARK_VIEW) for run_id in ids]


BenchmarkReader = Annotated[BenchmarkAccess, Depends(benchmark_access(Permission.BENCHMARK_VIEW))]
BenchmarkManager = Annotated[
    BenchmarkAccess, Depends(benchmark_access(Permission.BENCHMARK_MANAGE))
]
BenchmarksCompared = Annotated[list[BenchmarkAccess], Depends(_compared)]
