"""Datasets: uploads streamed into object storage (and a local spool copy that is validated
and then removed), immutable versions identified by their SHA-256, previews, soft delete."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.adapters.storage import ObjectStorage, ObjectWriter, StoredObject, read_verified
from budapp.adapters.storage import TooLarge as ObjectTooLarge
from budapp.core.auth import Principal
from budapp.core.db import end_read_transaction, utcnow
from budapp.core.envelope import Page
from budapp.core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from budapp.core.multipart import ReceivedForm, read_form_into
from budapp.core.references import ReferenceGuard
from budapp.core.roles import Permission
from budapp.datasets.columns import read_column
from budapp.datasets.models import Dataset, DatasetVersion
from budapp.datasets.objects import DATASET_OBJECT_PREFIX
from budapp.datasets.repository import DatasetRepository
from budapp.datasets.schemas import (
    DatasetFilter,
    DatasetForm,
    DatasetRead,
    DatasetUpdate,
    DatasetVersionRead,
)
from budapp.datasets.validation import DatasetInvalid, format_of, summarize
from budapp.projects.service import ProjectService

_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ +-]{0,254}$")
_SPOOL_CHUNK = 1024 * 1024


class DatasetLimits:
    def __init__(self, *, max_bytes: int, max_rows: int, preview_rows: int, spool: Path) -> None:
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self.preview_rows = preview_rows
        self.spool = spool


class _SpooledUpload:
    """The dataset file, written to object storage and to a private local copy at once."""

    def __init__(self, writer: ObjectWriter, spool: Path, filename: str) -> None:
        self.writer = writer
        self.filename = filename
        descriptor, name = tempfile.mkstemp(dir=spool, suffix=".upload")
        self.path = Path(name)
        self._handle: BinaryIO = os.fdopen(descriptor, "wb")
        self._buffer = bytearray()
        self.stored: StoredObject | None = None

    async def write(self, data: bytes) -> None:
        try:
            await self.writer.write(data)
        except ObjectTooLarge as exc:
            raise PayloadTooLarge(f"A dataset may hold at most {exc.limit} bytes") from None
        self._buffer += data
        if len(self._buffer) >= _SPOOL_CHUNK:
            await self._spool()

    async def _spool(self) -> None:
        data, self._buffer = bytes(self._buffer), bytearray()
        await asyncio.to_thread(self._handle.write, data)

    async def close(self) -> None:
        await self._spool()
        await asyncio.to_thread(self._handle.close)
        self.stored = await self.writer.commit()

    async def discard(self, storage: ObjectStorage) -> None:
        if self.stored is None:
            await self.writer.abort()
        else:
            await storage.delete(self.stored.key)

    def remove_spool(self) -> None:
        self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclass(frozen=True, slots=True)
class DatasetAccess:
    """A dataset as one caller may use it: found in their scope, their permission checked."""

    dataset: Dataset
    principal: Principal


class DatasetService:
    def __init__(
        self,
        session: AsyncSession,
        storage: ObjectStorage,
        projects: ProjectService,
        references: ReferenceGuard,
        limits: DatasetLimits,
    ) -> None:
        self.session = session
        self.repository = DatasetRepository(session)
        self.storage = storage
        self.projects = projects
        self.references = references
        self.limits = limits

    # --- access ----------------------------------------------------------------------------

    async def access(
        self, dataset_id: uuid.UUID, principal: Principal, permission: Permission
    ) -> DatasetAccess:
        """The dataset if the caller holds `permission` in a project (else FORBIDDEN:
        datasets belong to the whole organisation) and may see it (else NOT_FOUND)."""
        await self.projects.require_in_any_project(principal, permission)
        dataset = await self.repository.get(principal.scope, dataset_id)
        if dataset is None:
            raise NotFound("dataset", dataset_id)
        return DatasetAccess(dataset, principal)

    # --- reads -----------------------------------------------------------------------------

    async def read(self, access: DatasetAccess, version: int | None = None) -> DatasetRead:
        dataset = access.dataset
        versions = list(await self.repository.versions(dataset.id))
        shown = next(
            (v for v in versions if v.version == (version or dataset.latest_version)), None
        )
        if version is not None and shown is None:
            raise NotFound("dataset version", version)
        return self._read(dataset, versions, shown)

    async def page(self, principal: Principal, filters: DatasetFilter) -> Page[DatasetRead]:
        rows, total = await self.repository.page(principal.scope, filters)
        return Page([self._read(row, [], None) for row in rows], total, filters)

    async def download(
        self, access: DatasetAccess, version: int | None
    ) -> tuple[DatasetVersion, AsyncIterator[bytes]]:
        dataset = access.dataset
        found = await self.repository.version(dataset.id, version or dataset.latest_version)
        if found is None:
            raise NotFound("dataset version", version)
        return found, read_verified(self.storage, found.object_key, found.sha256)

    # --- writes ----------------------------------------------------------------------------

    async def create(
        self, principal: Principal, stream: AsyncIterator[bytes], content_type: str
    ) -> DatasetRead:
        """`principal` holds dataset:manage in a project (`DatasetsManager`)."""
        dataset = Dataset(id=uuid.uuid4(), organization_id=principal.organization_id, name="")
        version = await self._receive(dataset, stream, content_type, new=True)
        return self._read(dataset, [version], version)

    async def add_version(
        self, access: DatasetAccess, stream: AsyncIterator[bytes], content_type: str
    ) -> DatasetVersionRead:
        version = await self._receive(access.dataset, stream, content_type, new=False)
        return DatasetVersionRead.model_validate(version)

    async def update(self, access: DatasetAccess, data: DatasetUpdate) -> DatasetRead:
        dataset = access.dataset
        if data.name is not None and data.name != dataset.name:
            await self._ensure_name_free(dataset.organization_id, data.name, dataset.id)
            dataset.name = data.name
        if "description" in data.model_fields_set:
            dataset.description = data.description
        await self.session.flush()
        return await self.read(access)

    async def delete(self, access: DatasetAccess) -> None:
        dataset = access.dataset
        await self.references.ensure_unreferenced("dataset", self.session, dataset.id)
        dataset.deleted_at = utcnow()
        await self.session.flush()

    # --- upload ----------------------------------------------------------------------------

    async def _receive(
        self, dataset: Dataset, stream: AsyncIterator[bytes], content_type: str, *, new: bool
    ) -> DatasetVersion:
        version_id = uuid.uuid4()
        key = f"{DATASET_OBJECT_PREFIX}/{dataset.organization_id}/{dataset.id}/{version_id}"
        uploads: list[_SpooledUpload] = []

        async def open_sink(field: str, filename: str) -> _SpooledUpload:
            if field != "file" or uploads:
                raise InvalidInput("Send exactly one file, in a form field named 'file'")
            if not _FILENAME.match(filename):
                raise InvalidInput(f"Unsafe file name {filename!r}")
            writer = self.storage.writer(key, max_bytes=self.limits.max_bytes)
            uploads.append(_SpooledUpload(writer, self.limits.spool, filename))
            return uploads[0]

        await end_read_transaction(self.session)
        form = ReceivedForm()
        try:
            await read_form_into(form, stream, content_type, open_sink)
            fields = _fields(form)
            if not uploads or uploads[0].stored is None:
                raise InvalidInput("No file was uploaded: send it in a form field named 'file'")
            if new:
                await self._name_new(dataset, fields)
            return await self._record(dataset, version_id, uploads[0], uploads[0].stored, fields)
        except BaseException:
            for upload in uploads:
                await upload.discard(self.storage)
            raise
        finally:
            for upload in uploads:
                upload.remove_spool()

    async def _name_new(self, dataset: Dataset, fields: DatasetForm) -> None:
        if fields.name is None:
            raise InvalidInput("A new dataset needs a name", details=[{"field": "name"}])
        await self._ensure_name_free(dataset.organization_id, fields.name)
        dataset.name = fields.name
        dataset.description = fields.description
        self.repository.add(dataset)
        await self.session.flush()

    async def _record(
        self,
        dataset: Dataset,
        version_id: uuid.UUID,
        upload: _SpooledUpload,
        stored: StoredObject,
        fields: DatasetForm,
    ) -> DatasetVersion:
        if stored.size == 0:
            raise InvalidInput("The dataset file is empty")
        if fields.sha256 is not None and fields.sha256.lower() != stored.sha256:
            raise InvalidInput(
                f"Checksum mismatch: expected {fields.sha256.lower()}, got {stored.sha256}",
                details=[{"field": "sha256", "message": "does not match the uploaded bytes"}],
            )
        try:
            kind = format_of(upload.filename, fields.format)
            summary = await asyncio.to_thread(
                summarize,
                upload.path,
                kind,
                preview_rows=self.limits.preview_rows,
                max_rows=self.limits.max_rows,
            )
        except DatasetInvalid as exc:
            raise InvalidInput(f"The dataset is invalid: {exc}") from None
        await self.repository.lock(dataset)
        same = await self.repository.version_with_hash(dataset.id, stored.sha256)
        if same is not None:
            raise Conflict(f"This file is identical to version {same.version} (same SHA-256)")
        dataset.latest_version += 1
        version = DatasetVersion(
            id=version_id,
            organization_id=dataset.organization_id,
            dataset_id=dataset.id,
            version=dataset.latest_version,
            filename=upload.filename,
            format=kind,
            size=stored.size,
            sha256=stored.sha256,
            row_count=summary.row_count,
            columns=summary.columns,
            preview=summary.preview,
            object_key=stored.key,
        )
        self.repository.add(version)
        await self.session.flush()
        return version

    async def _ensure_name_free(
        self, organization_id: uuid.UUID, name: str, excluding: uuid.UUID | None = None
    ) -> None:
        if await self.repository.name_taken(organization_id, name, excluding=excluding):
            raise Conflict(f"A dataset named {name!r} already exists in this organization")

    @staticmethod
    def _read(
        dataset: Dataset, versions: list[DatasetVersion], shown: DatasetVersion | None
    ) -> DatasetRead:
        return DatasetRead(
            id=dataset.id,
            created_at=dataset.created_at,
            updated_at=dataset.updated_at,
            organization_id=dataset.organization_id,
            name=dataset.name,
            description=dataset.description,
            latest_version=dataset.latest_version,
            versions=[DatasetVersionRead.model_validate(v) for v in versions],
            preview=shown.preview if shown else None,
            preview_version=shown.version if shown else None,
        )


def _fields(form: ReceivedForm) -> DatasetForm:
    try:
        return DatasetForm.model_validate({name: values[0] for name, values in form.fields.items()})
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in error["loc"]), "message": error["msg"]}
            for error in exc.errors()
        ]
        raise InvalidInput("The upload's form fields are invalid", details=details) from None


async def column_values(  # noqa: PLR0917 - which version, which column, how many
    session: AsyncSession,
    storage: ObjectStorage,
    dataset_id: uuid.UUID,
    version: int,
    column: str,
    limit: int,
) -> list[Any]:
    """The first `limit` values of a column of a dataset version, for code acting once the
    caller was authorised (a benchmark's workflow); empty when the version is gone."""
    found = await DatasetRepository(session).version(dataset_id, version)
    if found is None:
        return []
    return await read_column(storage, found, column, limit)
