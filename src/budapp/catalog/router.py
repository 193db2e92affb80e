from __future__ import annotations

import uuid
from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from budapp.catalog.dependencies import (
    ModelManager,
    ModelReader,
    ModelServiceDep,
    ModelsManager,
    ModelsViewer,
    ModelUploadsDep,
    ScanOverrider,
)
from budapp.catalog.errors import ModelNotDeployable
from budapp.catalog.schemas import (
    CloudModelCreate,
    CustomModelCreate,
    LeaderboardEntry,
    LeaderboardFilter,
    LocalModelReference,
    ModelFilter,
    ModelRead,
    ModelUpdate,
    ScanOverride,
)
from budapp.core.bodies import json_body, media_type, multipart_openapi
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

router = APIRouter(prefix="/models", tags=["models"], responses=errors(Unauthorized, Forbidden))

_UPLOAD_FIELDS = {
    "name": {"type": "string"},
    "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
    "sha256": {
        "type": "array",
        "items": {"type": "string"},
        "description": "expected checksum per file, as `<file name>:<sha256 hex>`",
    },
    "tags": {"type": "string", "description": "comma-separated"},
    "description": {"type": "string"},
    "modality": {"type": "string"},
    "license": {"type": "string"},
}


@router.get("")
async def list_models(
    principal: ModelsViewer,
    service: ModelServiceDep,
    filters: Annotated[ModelFilter, Query()],
) -> PageEnvelope[ModelRead]:
    return (await service.page(principal, filters)).envelope()


@router.get("/leaderboard")
async def leaderboard(
    principal: ModelsViewer,
    service: ModelServiceDep,
    filters: Annotated[LeaderboardFilter, Query()],
) -> PageEnvelope[LeaderboardEntry]:
    """Models ranked per metric by their best benchmark or evaluation result."""
    return (await service.leaderboard(principal, filters)).envelope()


@router.post("/cloud", status_code=201, responses=errors(NotFound, Conflict, InvalidInput))
async def create_cloud_model(
    body: CloudModelCreate, principal: ModelsManager, service: ModelServiceDep
) -> Envelope[ModelRead]:
    return Envelope(data=await service.create_cloud(principal, body))


@router.post(
    "/local",
    status_code=201,
    responses=errors(Conflict, InvalidInput, PayloadTooLarge),
    openapi_extra=multipart_openapi(_UPLOAD_FIELDS, LocalModelReference),
)
async def create_local_model(
    request: Request, principal: ModelsManager, uploads: ModelUploadsDep
) -> Envelope[ModelRead]:
    """Multipart: one or more `file` parts, streamed into object storage, then scanned in the
    background. JSON: a Hugging Face `repo_id` that a cluster fetches at deploy time."""
    if media_type(request) == "application/json":
        reference = await json_body(request, LocalModelReference)
        return Envelope(data=await uploads.models.create_reference(principal, reference))
    content_type = request.headers.get("content-type", "")
    return Envelope(data=await uploads.create_local(principal, request.stream(), content_type))


@router.post("/custom", status_code=201, responses=errors(Conflict))
async def create_custom_model(
    body: CustomModelCreate, principal: ModelsManager, service: ModelServiceDep
) -> Envelope[ModelRead]:
    return Envelope(data=await service.create_custom(principal, body))


@router.get("/{model_id}", responses=errors(NotFound))
async def get_model(model: ModelReader, service: ModelServiceDep) -> Envelope[ModelRead]:
    return Envelope(data=await service.read(model))


@router.put("/{model_id}", responses=errors(NotFound, Conflict))
async def update_model(
    model: ModelManager, body: ModelUpdate, service: ModelServiceDep
) -> Envelope[ModelRead]:
    return Envelope(data=await service.update(model, body))


@router.delete(
    "/{model_id}", status_code=204, response_class=Response, responses=errors(NotFound, Conflict)
)
async def delete_model(model: ModelManager, service: ModelServiceDep) -> None:
    """Refused while an endpoint uses the model."""
    await service.delete(model)


@router.post("/{model_id}/scan-override", responses=errors(NotFound, Conflict))
async def override_scan(
    model: ScanOverrider, body: ScanOverride, service: ModelServiceDep
) -> Envelope[ModelRead]:
    """Org admins only: allow deploying a model whose scan failed. Audited with the reason."""
    return Envelope(data=await service.override_scan(model, body))


@router.get("/{model_id}/deployable", responses=errors(NotFound, ModelNotDeployable))
async def check_deployable(model: ModelReader, service: ModelServiceDep) -> Envelope[ModelRead]:
    """409 with the scan's findings when the model may not be deployed."""
    return Envelope(data=service.deployable(model))


@router.get(
    "/{model_id}/files/{file_id}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **errors(NotFound)},
)
async def download_model_file(
    model: ModelReader, file_id: uuid.UUID, service: ModelServiceDep
) -> StreamingResponse:
    stored, chunks = await service.download(model, file_id)
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(stored.size),
            "Content-Disposition": f'attachment; filename="{PurePosixPath(stored.path).name}"',
            "X-Checksum-SHA256": stored.sha256,
        },
    )
