from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, or_, select, update

from budapp.catalog.models import JobStatus, Model, ModelEvaluation, ModelFile, ModelTag, ScanJob
from budapp.catalog.schemas import LeaderboardFilter, ModelFilter
from budapp.core.auth import TenantScope
from budapp.core.repository import (
    Criterion,
    Repository,
    equal,
    fetch_page,
    name_taken,
    narrowed,
    search,
)

_FILTERS = (
    equal("source", Model.source),
    equal("modality", Model.modality),
    equal("provider", Model.provider),
    equal("scan_status", Model.scan_status),
    equal("organization_id", Model.organization_id),
    Criterion(
        "tag", lambda tag: Model.id.in_(select(ModelTag.model_id).where(ModelTag.tag == tag))
    ),
    search(
        "search",
        Model.name,
        Model.description,
        Model.architecture,
        Model.provider_model_id,
        Model.repo_id,
    ),
)


class ModelRepository(Repository):
    def _scoped(self, scope: TenantScope) -> Select[Model]:
        return select(Model).where(Model.deleted_at.is_(None), scope.where(Model.organization_id))

    async def get(self, scope: TenantScope, model_id: uuid.UUID) -> Model | None:
        return await self.session.scalar(self._scoped(scope).where(Model.id == model_id))

    async def of_organization(
        self, organization_id: uuid.UUID, model_ids: Sequence[uuid.UUID]
    ) -> list[Model]:
        statement = select(Model).where(
            Model.deleted_at.is_(None),
            Model.organization_id == organization_id,
            Model.id.in_(model_ids),
        )
        return list(await self.session.scalars(statement))

    async def page(self, scope: TenantScope, filters: ModelFilter) -> tuple[list[Model], int]:
        statement = narrowed(self._scoped(scope), filters, _FILTERS)
        statement = statement.order_by(Model.name, Model.id)
        return await fetch_page(self.session, statement, filters)

    async def name_taken(
        self, organization_id: uuid.UUID, name: str, *, excluding: uuid.UUID | None = None
    ) -> bool:
        return await name_taken(
            self.session, Model, name, excluding=excluding, organization_id=organization_id
        )

    async def files(self, model_id: uuid.UUID) -> Sequence[ModelFile]:
        statement = select(ModelFile).where(ModelFile.model_id == model_id)
        return (await self.session.scalars(statement.order_by(ModelFile.path))).all()

    async def file(self, model_id: uuid.UUID, file_id: uuid.UUID) -> ModelFile | None:
        statement = select(ModelFile).where(ModelFile.model_id == model_id, ModelFile.id == file_id)
        return await self.session.scalar(statement)

    async def replace_tags(self, model_id: uuid.UUID, tags: list[str]) -> None:
        await self.session.execute(delete(ModelTag).where(ModelTag.model_id == model_id))
        self.session.add_all(ModelTag(model_id=model_id, tag=tag) for tag in tags)

    async def count_using_credential(self, credential_id: uuid.UUID) -> int:
        statement = select(func.count()).where(
            Model.deleted_at.is_(None), Model.credential_id == credential_id
        )
        return int(await self.session.scalar(statement) or 0)

    async def leaderboard(self, scope: TenantScope, filters: LeaderboardFilter) -> list[Any]:
        """Per subject (a model, or an endpoint), metric and conditions: the best value each
        way, the number of results and the latest."""
        result = ModelEvaluation
        subject = (
            [result.endpoint_id, result.endpoint_name, result.runtime, result.device]
            if filters.by == "endpoint"
            else []
        )
        statement = (
            select(
                Model.id,
                Model.name,
                result.metric,
                result.conditions,
                result.higher_is_better,
                func.max(result.value),
                func.min(result.value),
                func.count(),
                func.max(result.created_at),
                *subject,
            )
            .join(Model, Model.id == result.model_id)
            .where(Model.deleted_at.is_(None), scope.where(result.organization_id))
            .group_by(
                Model.id,
                Model.name,
                result.metric,
                result.conditions,
                result.higher_is_better,
                *subject,
            )
        )
        if filters.by == "endpoint":
            statement = statement.where(result.endpoint_id.is_not(None))
        for column, wanted in (
            (result.metric, filters.metric),
            (result.kind, filters.kind),
            (result.conditions, filters.conditions),
            (result.runtime, filters.runtime),
            (result.device, filters.device),
        ):
            if wanted is not None:
                statement = statement.where(column == wanted)
        return list((await self.session.execute(statement)).all())

    async def withdraw_results(self, source_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(ModelEvaluation).where(ModelEvaluation.source_id == source_id)
        )


class ScanJobRepository(Repository):
    """Claims are single UPDATE statements, so two workers (or replicas) never take the same
    job: the loser's UPDATE matches no row."""

    async def next_claimable(self, now: datetime) -> ScanJob | None:
        statement = (
            select(ScanJob).where(_claimable(now)).order_by(ScanJob.created_at, ScanJob.id).limit(1)
        )
        return await self.session.scalar(statement)

    async def claim(self, job_id: uuid.UUID, now: datetime, lease_until: datetime) -> bool:
        statement = (
            update(ScanJob)
            .where(ScanJob.id == job_id, _claimable(now))
            .values(
                status=JobStatus.RUNNING,
                lease_until=lease_until,
                attempts=ScanJob.attempts + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(statement)
        return bool(getattr(result, "rowcount", 0) == 1)

    async def get(self, job_id: uuid.UUID) -> ScanJob | None:
        return await self.session.get(ScanJob, job_id, populate_existing=True)

    async def model(self, model_id: uuid.UUID) -> Model | None:
        return await self.session.get(Model, model_id, populate_existing=True)

    async def files(self, model_id: uuid.UUID) -> Sequence[ModelFile]:
        return await ModelRepository(self.session).files(model_id)

    async def pending(self) -> int:
        statement = select(func.count()).where(ScanJob.status != JobStatus.DONE)
        return int(await self.session.scalar(statement) or 0)


def _claimable(now: datetime) -> ColumnElement[bool]:
    # Queued, or running under a lease that ran out (its worker died with the replica).
    return or_(
        ScanJob.status == JobStatus.QUEUED,
        (ScanJob.status == JobStatus.RUNNING) & (ScanJob.lease_until < now),
    )
