"""The model catalogue: registering cloud, local and custom models, their metadata, the scan
override and the rule that decides whether a model may be deployed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.adapters.storage import ObjectStorage, read_verified
from budapp.catalog.errors import ModelNotDeployable
from budapp.catalog.licenses import terms_of
from budapp.catalog.models import Model, ModelEvaluation, ModelFile, ModelSource, ScanStatus
from budapp.catalog.repository import ModelRepository
from budapp.catalog.schemas import (
    CloudModelCreate,
    CustomModelCreate,
    LeaderboardEntry,
    LeaderboardFilter,
    LocalModelReference,
    ModelFileRead,
    ModelFilter,
    ModelMetadata,
    ModelRead,
    ModelResult,
    ModelUpdate,
    ScanOverride,
)
from budapp.core.auth import Principal, system_scope
from budapp.core.db import after_commit, utcnow
from budapp.core.envelope import Page
from budapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from budapp.core.references import ReferenceGuard
from budapp.core.roles import Permission
from budapp.credentials.service import CredentialService
from budapp.events.service import publish_after_commit
from budapp.projects.service import ProjectService

# A model was deleted: gateways reload the routing of its organization.
MODELS_CHANGED_TOPIC = "models.changed"


class ScanQueue(Protocol):
    async def wake(self) -> None: ...


def ensure_deployable(model: Model) -> None:
    """The endpoints domain calls this before deploying: a model whose scan failed is refused
    unless an org admin overrode the result; one still being scanned waits for it."""
    if model.is_deleted:
        raise NotFound("model", model.id)
    if model.scan_status is ScanStatus.PENDING:
        raise ModelNotDeployable("The model's files are still being scanned")
    if model.scan_status is ScanStatus.FAILED and model.scan_override_at is None:
        raise ModelNotDeployable(
            "The model's files failed the safety scan; an org admin may override it",
            details=model.scan_findings,
        )


def is_deployable(model: Model) -> bool:
    try:
        ensure_deployable(model)
    except (ModelNotDeployable, NotFound):
        return False
    return True


@dataclass(frozen=True, slots=True)
class ModelAccess:
    """A model as one caller may use it: found in their scope, their permission checked."""

    model: Model
    principal: Principal


class ModelService:
    def __init__(
        self,
        session: AsyncSession,
        storage: ObjectStorage,
        projects: ProjectService,
        credentials: CredentialService,
        references: ReferenceGuard,
        *,
        scans: ScanQueue,
    ) -> None:
        self.session = session
        self.repository = ModelRepository(session)
        self.storage = storage
        self.projects = projects
        self.credentials = credentials
        self.references = references
        self.scans = scans

    # --- access ----------------------------------------------------------------------------

    async def access(
        self, model_id: uuid.UUID, principal: Principal, permission: Permission
    ) -> ModelAccess:
        """The model if the caller holds `permission` in a project (else FORBIDDEN: models
        belong to the whole organisation) and may see it (else NOT_FOUND)."""
        await self.projects.require_in_any_project(principal, permission)
        model = await self.repository.get(principal.scope, model_id)
        if model is None:
            raise NotFound("model", model_id)
        return ModelAccess(model, principal)

    async def visible(self, principal: Principal, model_id: uuid.UUID) -> Model:
        """A model of the caller's organisation, for a caller already checked for model:view
        (a request body naming a model, after `ModelsViewer`)."""
        model = await self.repository.get(principal.scope, model_id)
        if model is None:
            raise NotFound("model", model_id)
        return model

    # --- reads -----------------------------------------------------------------------------

    async def read(self, access: ModelAccess) -> ModelRead:
        return self.to_read(access.model, await self.repository.files(access.model.id))

    async def page(self, principal: Principal, filters: ModelFilter) -> Page[ModelRead]:
        rows, total = await self.repository.page(principal.scope, filters)
        return Page([self.to_read(row) for row in rows], total, filters)

    async def download(
        self, access: ModelAccess, file_id: uuid.UUID
    ) -> tuple[ModelFile, AsyncIterator[bytes]]:
        model = access.model
        found = await self.repository.file(model.id, file_id)
        if found is None:
            raise NotFound("model file", file_id)
        return found, read_verified(self.storage, found.object_key, found.sha256)

    async def leaderboard(
        self, principal: Principal, filters: LeaderboardFilter
    ) -> Page[LeaderboardEntry]:
        """Ranks per metric and conditions: results under other conditions (another load,
        other token lengths, another dataset) are not compared."""
        entries = []
        for row in await self.repository.leaderboard(principal.scope, filters):
            model_id, name, metric, conditions, higher, best_max, best_min, count, last = row[:9]
            endpoint = row[9:] if filters.by == "endpoint" else (None, None, None, None)
            value = best_max if higher else best_min
            entry = LeaderboardEntry(
                rank=0,
                metric=metric,
                conditions=conditions,
                model_id=model_id,
                model_name=name,
                endpoint_id=endpoint[0],
                endpoint_name=endpoint[1],
                runtime=endpoint[2],
                device=endpoint[3],
                value=value,
                higher_is_better=higher,
                results=count,
                last_recorded_at=last,
            )
            entries.append(((metric, conditions, -value if higher else value, name), entry))
        entries.sort(key=lambda pair: pair[0])
        ranked: list[LeaderboardEntry] = []
        for _, entry in entries:
            previous = ranked[-1] if ranked else None
            same_group = previous is not None and (previous.metric, previous.conditions) == (
                entry.metric,
                entry.conditions,
            )
            entry.rank = previous.rank + 1 if same_group and previous is not None else 1
            ranked.append(entry)
        start = filters.offset
        return Page(ranked[start : start + filters.per_page], len(ranked), filters)

    # --- writes ----------------------------------------------------------------------------

    async def create_cloud(self, principal: Principal, data: CloudModelCreate) -> ModelRead:
        try:
            credential = (
                await self.credentials.access(
                    data.credential_id, principal, Permission.CREDENTIAL_VIEW
                )
            ).credential
        except (NotFound, Forbidden):
            raise NotFound("credential", data.credential_id) from None
        # A super admin sees every tenant's credentials; a model uses its own tenant's only.
        if credential.organization_id != principal.organization_id:
            raise NotFound("credential", data.credential_id)
        if credential.category != "provider" or credential.kind != data.provider:
            raise InvalidInput(
                f"Credential {credential.id} is a {credential.kind} credential, "
                f"not one for {data.provider}",
                details=[{"field": "credential_id", "message": "provider mismatch"}],
            )
        model = await self.add_model(
            principal,
            data,
            source=ModelSource.CLOUD,
            scan_status=ScanStatus.NOT_REQUIRED,
            provider=data.provider,
            provider_model_id=data.provider_model_id,
            credential_id=credential.id,
        )
        return self.to_read(model)

    async def create_reference(self, principal: Principal, data: LocalModelReference) -> ModelRead:
        model = await self.add_model(
            principal,
            data,
            source=ModelSource.LOCAL,
            scan_status=ScanStatus.NOT_SCANNED,
            provider="huggingface",
            repo_id=data.repo_id,
            revision=data.revision,
        )
        return self.to_read(model)

    async def create_custom(self, principal: Principal, data: CustomModelCreate) -> ModelRead:
        model = await self.add_model(
            principal,
            data,
            source=ModelSource.CUSTOM,
            scan_status=ScanStatus.NOT_SCANNED,
            uri=data.uri,
        )
        return self.to_read(model)

    async def add_model(
        self,
        principal: Principal,
        data: ModelMetadata,
        *,
        name: str | None = None,
        **columns: object,
    ) -> Model:
        name = name or getattr(data, "name", None)
        if not isinstance(name, str):  # pragma: no cover - every create schema has a name
            raise InvalidInput("A model needs a name")
        await self.ensure_name_free(principal.organization_id, name)
        model = Model(
            id=columns.pop("id", None) or uuid.uuid4(),
            organization_id=principal.organization_id,
            name=name,
            tags=data.tags or [],
            **columns,
        )
        self._apply_metadata(model, data)
        self.repository.add(model)
        await self.session.flush()
        await self.repository.replace_tags(model.id, model.tags)
        await self.session.flush()
        return model

    async def update(self, access: ModelAccess, data: ModelUpdate) -> ModelRead:
        model = access.model
        if data.name is not None and data.name != model.name:
            await self.ensure_name_free(model.organization_id, data.name, excluding=model.id)
            model.name = data.name
        self._apply_metadata(model, data)
        if data.tags is not None:
            model.tags = data.tags
            await self.repository.replace_tags(model.id, data.tags)
        await self.session.flush()
        return self.to_read(model, await self.repository.files(model.id))

    async def delete(self, access: ModelAccess) -> None:
        model = access.model
        await self.references.ensure_unreferenced("model", self.session, model.id)
        model.deleted_at = utcnow()
        await self.session.flush()
        if model.source is ModelSource.CLOUD:
            payload = {"organization_id": str(model.organization_id)}
            publish_after_commit(self.session, MODELS_CHANGED_TOPIC, payload)

    async def override_scan(self, access: ModelAccess, data: ScanOverride) -> ModelRead:
        """`access` comes from an org admin (`ScanOverrider`)."""
        model = access.model
        if model.scan_status is not ScanStatus.FAILED:
            raise Conflict(
                f"Only a failed scan can be overridden (this one is {model.scan_status})"
            )
        model.scan_override_by = access.principal.user_id
        model.scan_override_reason = data.reason
        model.scan_override_at = utcnow()
        await self.session.flush()
        return self.to_read(model, await self.repository.files(model.id))

    @staticmethod
    def deployable(access: ModelAccess) -> ModelRead:
        ensure_deployable(access.model)
        return ModelService.to_read(access.model)

    # --- shared with the upload path -------------------------------------------------------

    async def ensure_name_free(
        self, organization_id: uuid.UUID, name: str, excluding: uuid.UUID | None = None
    ) -> None:
        if await self.repository.name_taken(organization_id, name, excluding=excluding):
            raise Conflict(f"A model named {name!r} already exists in this organization")

    def queue_scan_after_commit(self) -> None:
        after_commit(self.session, self.scans.wake)

    @staticmethod
    def _apply_metadata(model: Model, data: ModelMetadata) -> None:
        for column in (
            "description",
            "modality",
            "architecture",
            "parameter_count",
            "context_length",
            "quantization",
            "license",
        ):
            if column in data.model_fields_set:
                value = getattr(data, column)
                if value is not None or column in {"description", "quantization", "license"}:
                    setattr(model, column, value)

    @staticmethod
    def to_read(model: Model, files: Sequence[ModelFile] | None = None) -> ModelRead:
        terms = terms_of(model.license)
        read = ModelRead.model_validate(model)
        return read.model_copy(
            update={
                "license_name": terms.name if terms else None,
                "license_commercial_use": terms.commercial_use if terms else None,
                "license_flagged": terms.restricts_commercial_use if terms else False,
                "deployable": is_deployable(model),
                "files": [ModelFileRead.model_validate(f) for f in files or ()],
            }
        )


async def models_using_credential(session: AsyncSession, credential_id: uuid.UUID) -> str | None:
    count = await ModelRepository(session).count_using_credential(credential_id)
    return f"{count} model(s)" if count else None


async def load_model(session: AsyncSession, model_id: uuid.UUID) -> Model | None:
    """A live model by id, for workflows that act for a user checked earlier (deployments)."""
    return await ModelRepository(session).get(system_scope(), model_id)


async def models_of_organization(
    session: AsyncSession, organization_id: uuid.UUID, model_ids: Sequence[uuid.UUID]
) -> list[Model]:
    """The live ones of these models that belong to the organization (the gateway's cloud
    model targets: one query per routing load)."""
    return await ModelRepository(session).of_organization(organization_id, model_ids)


async def model_files(session: AsyncSession, model_id: uuid.UUID) -> list[ModelFile]:
    return list(await ModelRepository(session).files(model_id))


async def record_results(session: AsyncSession, results: list[ModelResult]) -> None:
    """The leaderboard's one entry point for other domains: a benchmark's or an evaluation's
    results, replacing those the same source recorded before."""
    repository = ModelRepository(session)
    for source_id in {result.source_id for result in results}:
        await repository.withdraw_results(source_id)
    for result in results:
        repository.add(
            ModelEvaluation(
                organization_id=result.organization_id,
                model_id=result.model_id,
                kind=result.kind,
                name=result.name[:255],
                metric=result.metric,
                value=result.value,
                higher_is_better=result.higher_is_better,
                conditions=result.conditions[:255],
                source_id=result.source_id,
                endpoint_id=result.endpoint_id,
                endpoint_name=result.endpoint_name,
                runtime=result.runtime,
                device=result.device,
                details=result.details,
            )
        )
    await session.flush()


async def withdraw_results(session: AsyncSession, source_id: uuid.UUID) -> None:
    await ModelRepository(session).withdraw_results(source_id)
