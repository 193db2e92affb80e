from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from budapp.core.components import components
from budapp.core.db import session_scope
from budapp.workflows.service import WorkflowService
from tests.workflows import sample


async def start_run(
    app: FastAPI,
    control: Path,
    *,
    organization_id: uuid.UUID,
    project_id: uuid.UUID | None,
    created_by: uuid.UUID | None = None,
) -> uuid.UUID:
    async with session_scope(components(app).session_factory) as session:
        service = WorkflowService(session, projects=None)  # type: ignore[arg-type]
        run = await service.start(
            sample.KIND,
            organization_id=organization_id,
            project_id=project_id,
            resource_id=uuid.uuid4(),
            arguments={"dir": str(control)},
            created_by=created_by,
        )
        return run.id


async def wait_for_status(
    client: httpx.AsyncClient,
    run_id: uuid.UUID,
    headers: dict[str, str],
    statuses: set[str],
    seconds: float = 20.0,
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        response = await client.get(f"/workflows/{run_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()["data"]
        if body["status"] in statuses:
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.05)
