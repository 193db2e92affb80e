"""Benchmarks: creating a run (ceilings, target, prompts, the API key of a router target),
reading, cancelling and deleting it. The run itself is a workflow (workflows.py); what its
results look like to compare, export and draw is in reports.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.api_keys.schemas import ApiKeyCreate
from budapp.api_keys.service import ApiKeyService
from budapp.benchmarks import charts, reports
from budapp.benchmarks.command import rerun_command
from budapp.benchmarks.config import (
    BenchmarkConfig,
    CapacityProfile,
    ConcurrencyProfile,
    DatasetPrompts,
    RateProfile,
    SweepProfile,
)
from budapp.benchmarks.environment import BenchmarkEnvironment
from budapp.benchmarks.models import BenchmarkRun, BenchmarkStatus, TargetKind
from budapp.benchmarks.prompts import usable_rows
from budapp.benchmarks.repository import BenchmarkRepository
from budapp.benchmarks.schemas import (
    BenchmarkCreate,
    BenchmarkFilter,
    BenchmarkRead,
    BenchmarkResults,
    Comparison,
    ExportFormat,
    RequestCursor,
    RequestPage,
    RequestRecordRead,
)
from budapp.benchmarks.targets import ResolvedTarget, TargetCheck
from budapp.catalog.service import withdraw_results
from budapp.core.auth import Principal
from budapp.core.db import utcnow
from budapp.core.envelope import Page
from budapp.core.errors import Conflict, InvalidInput, NotFound
from budapp.core.roles import Permission, Role
from budapp.datasets.service import DatasetService
from budapp.events.service import event_bus_of
from budapp.projects.service import ProjectAccess, ProjectService
from budapp.workflows.service import WorkflowService

RUN = "benchmark.run"
# The minted key outlives the run's longest possible duration by this much.
KEY_MARGIN = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class BenchmarkAccess:
    """A run the caller may see, with what the caller may do in its project."""

    run: BenchmarkRun
    project: ProjectAccess


def sealing_context(run_id: uuid.UUID) -> bytes:
    """The associated data of a run's sealed key: it opens on that run only."""
    return f"budapp:benchmark:{run_id}".encode()


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, details=[{"field": field, "message": message}])


class BenchmarkService:
    def __init__(
        self,
        session: AsyncSession,
        *,
        projects: ProjectService,
        targets: TargetCheck,
        workflows: WorkflowService,
        datasets: DatasetService,
        api_keys: ApiKeyService,
        environment: BenchmarkEnvironment,
    ) -> None:
        self.session = session
        self.repository = BenchmarkRepository(session)
        self.projects = projects
        self.targets = targets
        self.workflows = workflows
        self.datasets = datasets
        self.api_keys = api_keys
        self.environment = environment

    # --- access ----------------------------------------------------------------------------

    async def access(
        self, run_id: uuid.UUID, principal: Principal, permission: Permission
    ) -> BenchmarkAccess:
        run = await self.repository.get(principal.scope, run_id)
        if run is None:
            raise NotFound("benchmark", run_id)
        try:
            project = await self.projects.access(run.project_id, principal, permission)
        except NotFound:
            raise NotFound("benchmark", run_id) from None
        return BenchmarkAccess(run, project)

    # --- reads -----------------------------------------------------------------------------

    def read(self, run: BenchmarkRun) -> BenchmarkRead:
        command = rerun_command(run.target_kind, run.model, run.url, run.snapshot, run.config)
        return BenchmarkRead.model_validate(run).model_copy(update={"command": command})

    async def get(self, access: BenchmarkAccess) -> BenchmarkRead:
        return self.read(access.run)

    async def page(self, access: ProjectAccess, filters: BenchmarkFilter) -> Page[BenchmarkRead]:
        filters = filters.model_copy(update={"project_id": access.project.id})
        rows, total = await self.repository.page(access.principal.scope, filters, projects=None)
        return Page([self.read(row) for row in rows], total, filters)

    async def page_visible(
        self, principal: Principal, filters: BenchmarkFilter
    ) -> Page[BenchmarkRead]:
        """Every run the caller may see: all of the organisation's for org admins, else those
        of the projects where the caller may view benchmarks."""
        visible: list[uuid.UUID] | None = None
        if not principal.has_role(Role.ORG_ADMIN):
            visible = [
                membership.project_id
                for membership in await self.projects.memberships(principal.user_id)
                if Permission.BENCHMARK_VIEW in membership.permissions
            ]
        rows, total = await self.repository.page(principal.scope, filters, projects=visible)
        return Page([self.read(row) for row in rows], total, filters)

    async def requests(self, access: BenchmarkAccess, cursor: RequestCursor) -> RequestPage:
        after = None
        if cursor.after is not None:
            stage, sequence = cursor.after.split(":")
            after = (int(stage), int(sequence))
        rows = await self.repository.requests_page(
            access.run.id,
            after=after,
            stage=cursor.stage,
            status=cursor.status,
            limit=cursor.limit,
        )
        data = [RequestRecordRead.model_validate(row) for row in rows]
        following = f"{rows[-1].stage}:{rows[-1].sequence}" if len(rows) == cursor.limit else None
        return RequestPage(data=data, meta={"limit": cursor.limit, "next_cursor": following})

    async def results(self, access: BenchmarkAccess) -> BenchmarkResults:
        run = access.run
        results = run.results or {}
        return BenchmarkResults(
            id=run.id,
            status=run.status,
            partial=run.partial,
            stages=results.get("stages", []),
            summary=results.get("summary", {}),
            capacity=results.get("capacity"),
        )

    async def compare(self, accesses: list[BenchmarkAccess]) -> Comparison:
        return Comparison.model_validate(reports.compare([access.run for access in accesses]))

    async def export(
        self, access: BenchmarkAccess, fmt: ExportFormat
    ) -> tuple[str, bytes | AsyncIterator[bytes]]:
        """(media type, body): the run and its results as JSON, its stages as CSV, or its
        requests as JSONL (streamed a page at a time)."""
        run = access.run
        if fmt == "json":
            read = self.read(run).model_dump(mode="json")
            return "application/json", reports.as_json(run, read)
        if fmt == "csv":
            return "text/csv; charset=utf-8", reports.as_csv(run).encode()
        return "application/x-ndjson", self._request_lines(run.id)

    async def _request_lines(self, run_id: uuid.UUID) -> AsyncIterator[bytes]:
        """Streamed after the request's unit of work has ended: in a session of its own,
        closed when the stream ends (the request's would be reopened and never returned)."""
        async with self.environment.session_factory() as session:
            pages = BenchmarkRepository(session).all_requests(run_id)
            async for lines in reports.as_jsonl(pages):
                yield lines

    async def chart(
        self, accesses: list[BenchmarkAccess], kind: charts.Kind, fmt: charts.Format
    ) -> bytes:
        series = []
        for access in accesses:
            run = access.run
            ttft, tpot = await self.repository.latencies(run.id)
            stages = (run.results or {}).get("stages", [])
            series.append(charts.ChartSeries(run.name, stages, ttft, tpot))
        return await charts.render(kind, series, fmt)

    # --- writes ----------------------------------------------------------------------------

    async def create(self, access: ProjectAccess, data: BenchmarkCreate) -> BenchmarkRead:
        config = BenchmarkConfig.model_validate(
            data.model_dump(exclude={"name", "description", "target"})
        )
        self._check_ceilings(config)
        config = await self._check_prompts(access, config)
        target = await self.targets.resolve(access, data.target)
        project = access.project
        run = BenchmarkRun(
            id=uuid.uuid4(),
            organization_id=project.organization_id,
            project_id=project.id,
            name=data.name,
            description=data.description,
            target_kind=target.kind,
            endpoint_id=target.endpoint_id,
            router_id=target.router_id,
            credential_id=target.credential_id,
            url=target.url,
            model=target.model,
            config=config.model_dump(mode="json"),
            snapshot=target.snapshot,
            created_by=access.principal.user_id,
        )
        self.repository.add(run)
        await self.session.flush()
        if target.kind is TargetKind.ROUTER:
            await self._mint_key(access, run, target)
        workflow = await self.workflows.start(
            RUN,
            organization_id=project.organization_id,
            project_id=project.id,
            resource_id=run.id,
            arguments={"run_id": str(run.id)},
            created_by=access.principal.user_id,
        )
        run.workflow_id = workflow.id
        await self.session.flush()
        return self.read(run)

    async def cancel(self, access: BenchmarkAccess) -> BenchmarkRead:
        """Stops the run within a second or so; what it measured until then is kept (partial)."""
        run = access.run
        if run.status.finished:
            raise Conflict(f"The benchmark has already finished ({run.status.value})")
        workflow = await self.workflows.run_of(run.workflow_id) if run.workflow_id else None
        reason = f"Cancelled by {access.project.principal.email}"
        if workflow is not None and not workflow.status.finished:
            await self.workflows.cancel_run(workflow, reason)  # its on_cancel marks the run
        else:
            await mark_cancelled(self.session, run, reason)
        await self.session.flush()
        return self.read(run)

    async def delete(self, access: BenchmarkAccess) -> None:
        """A finished run only; its per-request records and leaderboard results go with it."""
        run = access.run
        if not run.status.finished:
            raise Conflict("The benchmark is still running: cancel it first")
        run.deleted_at = utcnow()
        await self.repository.drop_requests(run.id)
        await withdraw_results(self.session, run.id)
        await self.session.flush()

    # --- rules -----------------------------------------------------------------------------

    def _check_ceilings(self, config: BenchmarkConfig) -> None:
        env = self.environment
        profile = config.profile
        concurrency = None
        rate = None
        if isinstance(profile, ConcurrencyProfile):
            concurrency = profile.concurrency
        elif isinstance(profile, RateProfile):
            rate, concurrency = profile.rate, profile.max_concurrency
        elif isinstance(profile, SweepProfile):
            concurrency = profile.max_concurrency
        elif isinstance(profile, CapacityProfile):
            if profile.search == "rate":
                rate = profile.high
            else:
                concurrency = int(profile.high)
        if rate is not None and rate > env.max_rate:
            raise _invalid("profile", f"the request rate may not exceed {env.max_rate:g}/s here")
        if concurrency is not None and concurrency > env.max_concurrency:
            raise _invalid("profile", f"the concurrency may not exceed {env.max_concurrency} here")
        bounds = config.bounds
        longest = (bounds.duration_seconds + bounds.drain_seconds) * config.stages_at_most
        if longest > env.max_duration_seconds:
            raise _invalid(
                "bounds.duration_seconds",
                f"{config.stages_at_most} stage(s) of {bounds.duration_seconds:g}s (and "
                f"{bounds.drain_seconds:g}s to drain) exceed the {env.max_duration_seconds:g}s "
                "a benchmark may last here",
            )

    async def _check_prompts(
        self, access: ProjectAccess, config: BenchmarkConfig
    ) -> BenchmarkConfig:
        """Dataset prompts: the dataset visible to the caller, its version fixed, and the
        column present with values a request can send (checked on the stored first rows)."""
        prompts = config.prompts
        if not isinstance(prompts, DatasetPrompts):
            return config
        dataset = await self.datasets.read(
            await self.datasets.access(
                prompts.dataset_id, access.principal, Permission.DATASET_VIEW
            ),
            prompts.version,
        )
        version = prompts.version or dataset.latest_version
        columns = {
            column["name"]
            for shown in dataset.versions
            if shown.version == version
            for column in shown.columns
        }
        if prompts.column not in columns:
            raise _invalid(
                "prompts.column",
                f"dataset version {version} has no column {prompts.column!r}: "
                + ", ".join(sorted(columns)),
            )
        sample = [row.get(prompts.column) for row in dataset.preview or []]
        if not usable_rows(sample):
            raise _invalid(
                "prompts.column",
                f"column {prompts.column!r} holds no prompts: it needs text, or chat messages "
                "([{role, content}, ...])",
            )
        fixed = prompts.model_copy(update={"version": version})
        return config.model_copy(update={"prompts": fixed})

    async def _mint_key(
        self, access: ProjectAccess, run: BenchmarkRun, target: ResolvedTarget
    ) -> None:
        del target
        longest = timedelta(seconds=self.environment.max_duration_seconds) + KEY_MARGIN
        created = await self.api_keys.create(
            access,
            ApiKeyCreate(
                name=f"benchmark {run.name}"[:255],
                description=f"Minted for benchmark {run.id}; revoked when it ends",
                expires_at=utcnow() + longest,
            ),
        )
        sealed = self.environment.keyring.seal(created.key.encode(), sealing_context(run.id))
        run.api_key_id = created.id
        run.api_key_key_id = sealed.key_id
        run.api_key_sealed = sealed.ciphertext


async def mark_cancelled(session: AsyncSession, run: BenchmarkRun, reason: str) -> None:
    """A cancelled run keeps what it measured, marked partial; its minted key is revoked."""
    if run.status.finished:
        return
    run.status = BenchmarkStatus.CANCELLED
    run.status_message = reason[:2000]
    run.partial = True
    run.finished_at = utcnow()
    await revoke_run_key(session, run)


async def revoke_run_key(session: AsyncSession, run: BenchmarkRun) -> None:
    bus = event_bus_of(session)
    if run.api_key_id is None or bus is None:
        return
    try:
        await ApiKeyService(session, bus).revoke_in_project(run.project_id, run.api_key_id)
    except NotFound:
        return
