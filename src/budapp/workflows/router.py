from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from budapp.core.auth import CurrentPrincipal
from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import Conflict, Forbidden, NotFound, Unauthorized
from budapp.core.http import errors
from budapp.workflows.dependencies import WorkflowManager, WorkflowReader, WorkflowServiceDep
from budapp.workflows.schemas import WorkflowDetail, WorkflowFilter, WorkflowRead

router = APIRouter(prefix="/workflows", tags=["workflows"], responses=errors(Unauthorized))


@router.get("")
async def list_workflows(
    principal: CurrentPrincipal,
    service: WorkflowServiceDep,
    filters: Annotated[WorkflowFilter, Query()],
) -> PageEnvelope[WorkflowRead]:
    """Newest first. Org admins see their organisation's runs; others the runs of projects
    where they may view endpoints, and the runs they started."""
    return (await service.page(principal, filters)).envelope()


@router.get("/{workflow_id}", responses=errors(NotFound))
async def get_workflow(
    workflow: WorkflowReader, service: WorkflowServiceDep
) -> Envelope[WorkflowDetail]:
    """The run with its steps: status, attempts, timestamps, error, and what each is doing."""
    return Envelope(data=await service.read(workflow))


@router.post("/{workflow_id}/cancel", responses=errors(NotFound, Forbidden, Conflict))
async def cancel_workflow(
    workflow: WorkflowManager, service: WorkflowServiceDep
) -> Envelope[WorkflowDetail]:
    """Stops the run at its next step boundary; the step under way is not interrupted."""
    return Envelope(data=await service.cancel(workflow))


@router.post(
    "/{workflow_id}/retry", status_code=202, responses=errors(NotFound, Forbidden, Conflict)
)
async def retry_workflow(
    workflow: WorkflowManager, service: WorkflowServiceDep
) -> Envelope[WorkflowDetail]:
    """Starts a new run of a failed or cancelled one, with the same arguments; its
    `retry_of` names the original."""
    return Envelope(data=await service.retry(workflow))
