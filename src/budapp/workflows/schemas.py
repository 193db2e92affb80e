from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from budapp.core.envelope import PageParams
from budapp.core.schemas import ResponseSchema
from budapp.workflows.models import RunStatus, StepStatus


class WorkflowFilter(PageParams):
    status: RunStatus | None = None
    kind: str | None = Field(default=None, max_length=64)
    project_id: uuid.UUID | None = None
    resource_id: uuid.UUID | None = None


class StepRead(ResponseSchema):
    position: int
    name: str
    title: str
    status: StepStatus
    attempts: int
    detail: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None


class WorkflowRead(ResponseSchema):
    id: uuid.UUID
    organization_id: uuid.UUID
    project_id: uuid.UUID | None
    kind: str
    resource_type: str
    resource_id: uuid.UUID
    status: RunStatus
    progress: float = Field(default=0.0, description="Share of steps done, 0 to 1")
    steps_done: int
    steps_total: int
    error: str | None
    arguments: dict[str, Any]
    created_by: uuid.UUID | None
    retry_of: uuid.UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class WorkflowDetail(WorkflowRead):
    steps: list[StepRead]
