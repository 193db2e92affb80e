"""Run as a separate process by test_recovery: a budapp app on a database of its own that
starts (or only resumes) the sample workflow, then waits for the run to finish. The sample's
crash file makes the process die inside a step, as a replica would."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

from budapp.core import migrate
from budapp.core.components import components
from budapp.core.db import session_scope
from budapp.main import create_app
from budapp.settings import Settings
from budapp.workflows.models import WorkflowRun
from budapp.workflows.repository import WorkflowRepository
from tests.factories import create_organization
from tests.workflows.conftest import start_run


async def main(mode: str, database_url: str, data_dir: str, control: str) -> None:
    settings = Settings(
        data_dir=Path(data_dir),
        database_url=database_url,
        auto_migrate=False,
        access_log=False,
        log_level="WARNING",
        password_time_cost=1,
        password_memory_kib=64,
        admin_password="bootstrap-password",
        workflow_database_url=f"sqlite:///{Path(data_dir) / 'crash-workflows.db'}",
        replica_id="crash-test-replica",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        run_file = Path(control) / "run-id"
        if mode == "start":
            organization_id = await create_organization(app, "Crash test")
            run_id = await start_run(
                app, Path(control), organization_id=organization_id, project_id=None
            )
            run_file.write_text(str(run_id))
        run_id = uuid.UUID(run_file.read_text())
        for _ in range(400):
            async with session_scope(components(app).session_factory) as session:
                run = await session.get(WorkflowRun, run_id)
                assert run is not None
                if run.status.finished:
                    steps = await WorkflowRepository(session).steps(run_id)
                    attempts = ",".join(str(step.attempts) for step in steps)
                    sys.stdout.write(f"RUN {run.status.value} attempts={attempts}\n")
                    sys.stdout.flush()
                    return
            await asyncio.sleep(0.05)
        sys.stdout.write("RUN TIMEOUT\n")


if __name__ == "__main__":
    if sys.argv[1] == "start":
        migrate.upgrade(sys.argv[2])
    asyncio.run(main(*sys.argv[1:5]))
