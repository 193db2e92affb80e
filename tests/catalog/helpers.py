from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from budapp.adapters.storage import LocalObjectStorage
from budapp.adapters.storage.s3 import S3ObjectStorage
from budapp.catalog.models import Model, ModelFile
from budapp.core.components import STORAGE, components


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload_model(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    files: dict[str, bytes],
    *,
    name: str | None = None,
    **fields: Any,
) -> httpx.Response:
    data: dict[str, Any] = {"name": name or f"model-{uuid.uuid4().hex[:8]}", **fields}
    parts = [
        ("file", (path, content, "application/octet-stream")) for path, content in files.items()
    ]
    return await client.post("/models/local", data=data, files=parts, headers=headers)


async def wait_for_scan(
    client: httpx.AsyncClient, headers: dict[str, str], model_id: str
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 30.0
    while True:
        response = await client.get(f"/models/{model_id}", headers=headers)
        model: dict[str, Any] = response.json()["data"]
        if model["scan_status"] != "pending":
            return model
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the scan of {model_id} did not finish")
        await asyncio.sleep(0.05)


def stored_objects(app: FastAPI) -> set[str]:
    """Every object in the app's storage, and nothing half-written (asserted)."""
    storage = components(app)[STORAGE]
    if isinstance(storage, LocalObjectStorage):
        root: Path = storage.root
        assert list((root / ".incoming").iterdir()) == []
        return {
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and ".incoming" not in p.parts
        }
    assert isinstance(storage, S3ObjectStorage)
    client = storage.client
    assert client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []
    listing = client.list_objects_v2(Bucket=storage.bucket)
    return {item["Key"] for item in listing.get("Contents", [])}


async def count_rows(app: FastAPI) -> tuple[int, int]:
    async with components(app).engine.connect() as connection:
        models = (await connection.execute(select(func.count()).select_from(Model))).one()[0]
        files = (await connection.execute(select(func.count()).select_from(ModelFile))).one()[0]
    return int(models), int(files)
