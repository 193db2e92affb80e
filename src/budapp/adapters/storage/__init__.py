"""Object storage for model files and datasets: a local directory (embedded default) or any
S3 API, chosen from settings at start-up."""

from __future__ import annotations

from pathlib import Path

from budapp.adapters.storage.base import (
    AbandonedUploads,
    ChecksumMismatch,
    Digest,
    InvalidKey,
    ListedObject,
    ObjectMissing,
    ObjectStorage,
    ObjectWriter,
    StorageError,
    StoredObject,
    TooLarge,
    check_key,
    key_id,
    put,
    read_verified,
)
from budapp.adapters.storage.local import LocalObjectStorage


def create_object_storage(
    backend: str,
    *,
    directory: Path,
    bucket: str = "",
    endpoint_url: str = "",
    region: str = "",
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    part_size: int = 8 * 1024 * 1024,
    max_attempts: int = 5,
    create_bucket: bool = False,
    concurrency: int = 2,
) -> ObjectStorage:
    if backend == "local":
        return LocalObjectStorage(directory)
    if not bucket:
        raise ValueError("BUDAPP_S3_BUCKET is required with BUDAPP_STORAGE_BACKEND=s3")
    from budapp.adapters.storage.s3 import S3ObjectStorage  # noqa: PLC0415 - optional backend

    return S3ObjectStorage(
        bucket,
        endpoint_url=endpoint_url,
        region=region,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        part_size=part_size,
        max_attempts=max_attempts,
        create_bucket=create_bucket,
        concurrency=concurrency,
    )


__all__ = [
    "AbandonedUploads",
    "ChecksumMismatch",
    "Digest",
    "InvalidKey",
    "ListedObject",
    "LocalObjectStorage",
    "ObjectMissing",
    "ObjectStorage",
    "ObjectWriter",
    "StorageError",
    "StoredObject",
    "TooLarge",
    "check_key",
    "create_object_storage",
    "key_id",
    "put",
    "read_verified",
]
