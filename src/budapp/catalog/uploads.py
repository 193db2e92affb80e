"""`POST /models/local` with files: the multipart body is streamed straight into object
storage, file by file; the model, its files and its scan job are written only once every file
is stored and checked. Any failure removes every object this request wrote."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import PurePosixPath

from pydantic import ValidationError

from budapp.adapters.storage import ChecksumMismatch, ObjectStorage, ObjectWriter, StoredObject
from budapp.adapters.storage import TooLarge as ObjectTooLarge
from budapp.catalog.inspection import ALLOWED_EXTENSIONS, extension
from budapp.catalog.models import ModelFile, ModelSource, ScanJob, ScanStatus
from budapp.catalog.objects import MODEL_OBJECT_PREFIX
from budapp.catalog.schemas import SAFE_FILE_PATH, LocalModelForm, ModelRead
from budapp.catalog.service import ModelService
from budapp.core.auth import Principal
from budapp.core.db import end_read_transaction
from budapp.core.errors import InvalidInput, PayloadTooLarge
from budapp.core.multipart import ReceivedForm, read_form_into

FILE_FIELD = "file"


class StoredUpload:
    """One uploaded file on its way into storage (a `core.multipart.FileSink`)."""

    def __init__(self, storage: ObjectStorage, key: str, path: str, max_bytes: int) -> None:
        self.storage = storage
        self.key = key
        self.path = path
        self.file_id = uuid.UUID(key.rsplit("/", 1)[1])
        self.writer: ObjectWriter = storage.writer(key, max_bytes=max_bytes)
        self.stored: StoredObject | None = None

    async def write(self, data: bytes) -> None:
        try:
            await self.writer.write(data)
        except ObjectTooLarge as exc:
            raise PayloadTooLarge(f"{self.path} is larger than {exc.limit} bytes") from None

    async def close(self) -> None:
        self.stored = await self.writer.commit()

    async def discard(self) -> None:
        if self.stored is None:
            await self.writer.abort()
        else:
            await self.storage.delete(self.key)


def check_file_path(path: str) -> str:
    if not SAFE_FILE_PATH.match(path) or "//" in path or path.endswith("/"):
        raise InvalidInput(
            f"Unsafe file name {path!r}: use a relative path of letters, digits, '.', '-', '_'",
            details=[{"field": "file", "message": "unsafe file name"}],
        )
    if extension(path) not in ALLOWED_EXTENSIONS:
        raise InvalidInput(
            f"Unknown file type {PurePosixPath(path).suffix or path!r}: allowed are "
            + ", ".join(sorted(ALLOWED_EXTENSIONS)),
            details=[{"field": "file", "message": "unknown file type"}],
        )
    return path


def parse_form(form: ReceivedForm) -> LocalModelForm:
    values: dict[str, object] = {
        name: items[0] for name, items in form.fields.items() if name not in {"tags", "sha256"}
    }
    if "tags" in form.fields:
        values["tags"] = [t.strip() for item in form.fields["tags"] for t in item.split(",") if t]
    checksums = {}
    for item in form.fields.get("sha256", []):
        path, _, digest = item.rpartition(":")
        checksums[path] = digest
    values["checksums"] = checksums
    try:
        return LocalModelForm.model_validate(values)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in error["loc"]), "message": error["msg"]}
            for error in exc.errors()
        ]
        raise InvalidInput("The upload's form fields are invalid", details=details) from None


class ModelUploads:
    def __init__(self, models: ModelService, *, file_max_bytes: int) -> None:
        self.models = models
        self.storage = models.storage
        self.file_max_bytes = file_max_bytes

    async def create_local(
        self, principal: Principal, stream: AsyncIterator[bytes], content_type: str
    ) -> ModelRead:
        """`principal` holds model:manage in a project (`ModelsManager`)."""
        await end_read_transaction(self.models.session)
        model_id = uuid.uuid4()
        uploads: list[StoredUpload] = []

        async def open_sink(field: str, filename: str) -> StoredUpload:
            if field != FILE_FIELD:
                raise InvalidInput(f"Files go in form fields named {FILE_FIELD!r}, not {field!r}")
            path = check_file_path(filename)
            if any(upload.path == path for upload in uploads):
                raise InvalidInput(f"The file {path!r} was sent twice")
            key = f"{MODEL_OBJECT_PREFIX}/{principal.organization_id}/{model_id}/{uuid.uuid4()}"
            upload = StoredUpload(self.storage, key, path, self.file_max_bytes)
            uploads.append(upload)
            return upload

        form = ReceivedForm()
        try:
            await read_form_into(form, stream, content_type, open_sink)
            data = parse_form(form)
            self._check(uploads, data)
            await self.models.ensure_name_free(principal.organization_id, data.name)
            return await self._record(model_id, data, uploads, principal)
        except BaseException:
            for upload in uploads:
                await upload.discard()
            raise

    @staticmethod
    def _check(uploads: list[StoredUpload], data: LocalModelForm) -> None:
        if not uploads:
            raise InvalidInput(
                "No files were uploaded: send one or more `file` parts, or a JSON body with "
                "a Hugging Face repo_id"
            )
        for upload in uploads:
            assert upload.stored is not None  # noqa: S101 - read_form closes every sink
            if upload.stored.size == 0:
                raise InvalidInput(f"The file {upload.path!r} is empty")
            expected = data.checksums.get(upload.path)
            if expected is not None and expected.lower() != upload.stored.sha256:
                mismatch = ChecksumMismatch(expected.lower(), upload.stored.sha256)
                raise InvalidInput(
                    f"Checksum mismatch for {upload.path!r}: {mismatch}",
                    details=[{"field": f"sha256.{upload.path}", "message": str(mismatch)}],
                )
        unknown = set(data.checksums) - {upload.path for upload in uploads}
        if unknown:
            raise InvalidInput(f"Checksums given for files not uploaded: {sorted(unknown)}")

    async def _record(
        self,
        model_id: uuid.UUID,
        data: LocalModelForm,
        uploads: list[StoredUpload],
        principal: Principal,
    ) -> ModelRead:
        service = self.models
        model = await service.add_model(
            principal,
            data,
            id=model_id,
            source=ModelSource.LOCAL,
            scan_status=ScanStatus.PENDING,
            total_size=sum(u.stored.size for u in uploads if u.stored),
        )
        files = [
            ModelFile(
                id=upload.file_id,
                organization_id=model.organization_id,
                model_id=model.id,
                path=upload.path,
                size=upload.stored.size,
                sha256=upload.stored.sha256,
                object_key=upload.key,
            )
            for upload in uploads
            if upload.stored is not None
        ]
        for row in files:
            service.repository.add(row)
        service.repository.add(ScanJob(organization_id=model.organization_id, model_id=model.id))
        await service.session.flush()
        service.queue_scan_after_commit()
        return service.to_read(model, files)
