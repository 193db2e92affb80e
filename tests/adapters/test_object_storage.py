"""Both object storage backends against the same behaviour: the local directory, and S3
through moto's server on loopback."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from budapp.adapters.storage import (
    ChecksumMismatch,
    InvalidKey,
    LocalObjectStorage,
    ObjectMissing,
    ObjectStorage,
    StorageError,
    TooLarge,
    put,
    read_verified,
)
from budapp.adapters.storage import local as local_module
from budapp.adapters.storage import s3 as s3_module
from budapp.adapters.storage.s3 import S3ObjectStorage
from tests.s3server import s3_storage

MIB = 1024 * 1024


async def _chunks(data: bytes, size: int = MIB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _read(storage: ObjectStorage, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.read(key)])


def _leftovers(storage: ObjectStorage) -> list[str]:
    """Partial uploads a failed write left behind: temporary files, or S3 multipart parts."""
    if isinstance(storage, LocalObjectStorage):
        return [p.name for p in (storage.root / ".incoming").iterdir()]
    assert isinstance(storage, S3ObjectStorage)
    uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket)
    return [upload["Key"] for upload in uploads.get("Uploads", [])]


async def test_round_trip_of_a_multipart_sized_object(storage: ObjectStorage) -> None:
    # 12 MiB: three 5 MiB parts on S3 (the smallest part size S3 accepts), one file locally.
    data = os.urandom(12 * MIB)
    stored = await put(storage, "models/a/b/c", _chunks(data))
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await storage.size_of("models/a/b/c") == len(data)
    assert await _read(storage, "models/a/b/c") == data


async def test_small_object_and_delete(storage: ObjectStorage) -> None:
    await put(storage, "k", _chunks(b"hello"))
    assert await _read(storage, "k") == b"hello"
    await storage.delete("k")
    assert await storage.size_of("k") is None
    with pytest.raises(ObjectMissing):
        await _read(storage, "k")


async def test_expected_checksum_mismatch_leaves_nothing(storage: ObjectStorage) -> None:
    data = os.urandom(7 * MIB)
    with pytest.raises(ChecksumMismatch):
        await put(storage, "sum", _chunks(data), expected_sha256="0" * 64)
    assert await storage.size_of("sum") is None
    assert _leftovers(storage) == []


async def test_expected_checksum_match_is_accepted(storage: ObjectStorage) -> None:
    data = b"payload" * 1000
    digest = hashlib.sha256(data).hexdigest()
    stored = await put(storage, "ok", _chunks(data), expected_sha256=digest.upper())
    assert stored.sha256 == digest


async def test_size_limit_stops_the_write_and_leaves_nothing(storage: ObjectStorage) -> None:
    with pytest.raises(TooLarge):
        await put(storage, "big", _chunks(os.urandom(11 * MIB)), max_bytes=6 * MIB)
    assert await storage.size_of("big") is None
    assert _leftovers(storage) == []


@pytest.mark.parametrize(
    "key", ["../escape", "a/../../b", "/absolute", "", "a//b", "a/./b", ".hidden", "a\\b", "a b"]
)
async def test_unsafe_keys_are_refused(storage: ObjectStorage, key: str) -> None:
    with pytest.raises(InvalidKey):
        storage.writer(key)
    with pytest.raises(InvalidKey):
        await storage.delete(key)


async def test_reading_verifies_the_recorded_checksum(storage: ObjectStorage) -> None:
    stored = await put(storage, "t/x", _chunks(b"original bytes"))
    await put(storage, "t/x", _chunks(b"tampered bytes"))
    with pytest.raises(ChecksumMismatch):
        _ = [chunk async for chunk in read_verified(storage, "t/x", stored.sha256)]


async def test_ping(storage: ObjectStorage) -> None:
    await storage.ping()


async def test_s3_start_refuses_a_missing_bucket_unless_asked_to_create(s3_endpoint: str) -> None:
    storage = s3_storage(s3_endpoint, f"missing-{uuid.uuid4().hex[:8]}")
    storage.create_bucket = False
    with pytest.raises(StorageError, match="does not exist"):
        await storage.start()
    await storage.close()


# --- listing and abandoned uploads (what the storage sweeper reads) -----------------------


async def test_list_streams_every_object_under_a_prefix_across_pages(
    storage: ObjectStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two objects a page: the listing has to follow S3's continuation tokens (or, locally,
    # come back for more entries) to find all five.
    monkeypatch.setattr(s3_module, "LIST_PAGE_SIZE", 2)
    monkeypatch.setattr(local_module, "LIST_PAGE_SIZE", 2)
    before = datetime.now(UTC) - timedelta(minutes=5)
    keys = {f"models/org/m{i % 2}/{uuid.uuid4()}": b"x" * (i + 1) for i in range(5)}
    for key, data in keys.items():
        await put(storage, key, _chunks(data))
    await put(storage, "datasets/org/d/v", _chunks(b"other prefix"))
    await put(storage, "modelsx/org/m/f", _chunks(b"not under models/"))

    listed = [item async for item in storage.list("models")]

    assert {item.key: item.size for item in listed} == {k: len(v) for k, v in keys.items()}
    assert all(before < item.modified <= datetime.now(UTC) for item in listed)
    assert [item.key async for item in storage.list("models/org/m0")] != []
    assert [item async for item in storage.list("nothing-here")] == []


@pytest.mark.parametrize("prefix", ["", "models/", "../models", "models/../..", "/models"])
async def test_list_refuses_unsafe_prefixes(storage: ObjectStorage, prefix: str) -> None:
    with pytest.raises(InvalidKey):
        [item async for item in storage.list(prefix)]


def _start_abandoned_upload(storage: ObjectStorage, key: str) -> None:
    """What a writer killed mid-upload leaves behind."""
    if isinstance(storage, LocalObjectStorage):
        (storage.root / ".incoming" / uuid.uuid4().hex).write_bytes(b"half an object")
        return
    assert isinstance(storage, S3ObjectStorage)
    storage.client.create_multipart_upload(Bucket=storage.bucket, Key=key)


async def test_abandoned_uploads_are_removed_only_once_old_enough(storage: ObjectStorage) -> None:
    _start_abandoned_upload(storage, "models/org/m/f")
    now = datetime.now(UTC)
    prefixes = ["models", "datasets"]

    # moto dates every multipart upload in 2010, so "younger" here is younger than 2000.
    young = await storage.remove_abandoned_uploads(
        datetime(2000, 1, 1, tzinfo=UTC), prefixes=prefixes
    )
    dry = await storage.remove_abandoned_uploads(
        now + timedelta(hours=1), prefixes=prefixes, dry_run=True
    )
    assert (young.removed, dry.removed) == (0, 1)
    assert _leftovers(storage) != []

    old = await storage.remove_abandoned_uploads(now + timedelta(hours=1), prefixes=prefixes)
    assert (old.removed, old.errors) == (1, 0)
    assert _leftovers(storage) == []


async def test_abandoned_uploads_outside_the_prefixes_are_left_on_s3(s3_endpoint: str) -> None:
    # A bucket may be shared: another application's uploads are not ours to abort.
    storage = s3_storage(s3_endpoint, f"b-{uuid.uuid4().hex[:12]}")
    await storage.start()
    _start_abandoned_upload(storage, "backups/nightly")
    swept = await storage.remove_abandoned_uploads(
        datetime.now(UTC) + timedelta(days=1), prefixes=["models", "datasets"]
    )
    assert swept.removed == 0
    assert _leftovers(storage) == ["backups/nightly"]
    await storage.close()
