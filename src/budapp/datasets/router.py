from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from budapp.core.http import errors
from budapp.datasets.dependencies import (
    DatasetManager,
    DatasetReader,
    DatasetServiceDep,
    DatasetsManager,
    DatasetsViewer,
)
from budapp.datasets.schemas import DatasetFilter, DatasetRead, DatasetUpdate, DatasetVersionRead

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=errors(Unauthorized, Forbidden))

_UPLOAD = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "description": {"type": "string"},
                        "format": {"type": "string", "enum": ["jsonl", "csv", "parquet"]},
                        "sha256": {"type": "string"},
                        "file": {"type": "string", "format": "binary"},
                    },
                    "required": ["file"],
                }
            }
        },
    }
}
_UPLOAD_ERRORS = errors(InvalidInput, Conflict, PayloadTooLarge)


@router.get("")
async def list_datasets(
    principal: DatasetsViewer,
    service: DatasetServiceDep,
    filters: Annotated[DatasetFilter, Query()],
) -> PageEnvelope[DatasetRead]:
    return (await service.page(principal, filters)).envelope()


@router.post("", status_code=201, responses=_UPLOAD_ERRORS, openapi_extra=_UPLOAD)
async def upload_dataset(
    request: Request, principal: DatasetsManager, service: DatasetServiceDep
) -> Envelope[DatasetRead]:
    """A new dataset with its first version: one JSONL, CSV or Parquet `file`, streamed."""
    content_type = request.headers.get("content-type", "")
    return Envelope(data=await service.create(principal, request.stream(), content_type))


@router.get("/{dataset_id}", responses=errors(NotFound))
async def get_dataset(
    dataset: DatasetReader,
    service: DatasetServiceDep,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> Envelope[DatasetRead]:
    """With every version and a preview of the first rows of the latest (or `version`)."""
    return Envelope(data=await service.read(dataset, version))


@router.put("/{dataset_id}", responses=errors(NotFound, Conflict))
async def update_dataset(
    dataset: DatasetManager, body: DatasetUpdate, service: DatasetServiceDep
) -> Envelope[DatasetRead]:
    return Envelope(data=await service.update(dataset, body))


@router.delete(
    "/{dataset_id}", status_code=204, response_class=Response, responses=errors(NotFound, Conflict)
)
async def delete_dataset(dataset: DatasetManager, service: DatasetServiceDep) -> None:
    await service.delete(dataset)


@router.post(
    "/{dataset_id}/versions",
    status_code=201,
    responses={**_UPLOAD_ERRORS, **errors(NotFound)},
    openapi_extra=_UPLOAD,
)
async def upload_dataset_version(
    dataset: DatasetManager, request: Request, service: DatasetServiceDep
) -> Envelope[DatasetVersionRead]:
    """A new immutable version; a file identical to an existing version is refused (409)."""
    content_type = request.headers.get("content-type", "")
    return Envelope(data=await service.add_version(dataset, request.stream(), content_type))


@router.get(
    "/{dataset_id}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **errors(NotFound)},
)
async def download_dataset(
    dataset: DatasetReader,
    service: DatasetServiceDep,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> StreamingResponse:
    found, chunks = await service.download(dataset, version)
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(found.size),
            "Content-Disposition": f'attachment; filename="{found.filename}"',
            "X-Checksum-SHA256": found.sha256,
        },
    )
