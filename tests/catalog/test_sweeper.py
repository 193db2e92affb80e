"""The storage sweeper against both storage backends and the real database: orphans past
the grace period, files of models and datasets deleted past the retention, abandoned uploads,
dry runs and failures. Object ages are set by the sweep's `now` (S3 dates objects itself) or,
locally, by the files' mtimes."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import structlog
from fastapi import FastAPI
from sqlalchemy import func, select

from budapp.adapters.storage import LocalObjectStorage, ObjectStorage, StorageError, put
from budapp.audit.models import AuditRecord
from budapp.catalog import sweeper as sweeper_module
from budapp.catalog.models import Model, ModelFile, ModelSource, ScanStatus
from budapp.catalog.objects import MODEL_FILES
from budapp.catalog.sweeper import STORAGE_SWEEPER, StorageSweeper
from budapp.core.components import STORAGE, components
from budapp.core.db import session_scope, utcnow
from budapp.datasets.models import Dataset, DatasetFormat, DatasetVersion
from budapp.datasets.objects import DATASET_FILES
from tests.catalog.helpers import stored_objects, upload_model
from tests.factories import World, create_organization
from tests.s3server import ACCESS_KEY, SECRET_KEY
from tests.sql_trace import sql_statements

GRACE = timedelta(hours=24)
RETENTION = timedelta(days=30)


@pytest.fixture
async def organization(app: FastAPI) -> uuid.UUID:
    return await create_organization(app, "Sweep Org")


def sweeper_for(
    app: FastAPI, storage: ObjectStorage, retention: timedelta | None = RETENTION
) -> StorageSweeper:
    return StorageSweeper(
        components(app).session_factory,
        storage,
        [MODEL_FILES, DATASET_FILES],
        grace=GRACE,
        retention=retention,
        page_size=2,  # several pages, and so several reference queries, in a small test
    )


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def store(storage: ObjectStorage, key: str, data: bytes = b"weights") -> str:
    await put(storage, key, _bytes(data))
    return key


async def exists(storage: ObjectStorage, key: str) -> bool:
    return await storage.size_of(key) is not None


async def add_model(
    app: FastAPI,
    storage: ObjectStorage,
    organization: uuid.UUID,
    *,
    deleted_at: datetime | None = None,
    files: int = 1,
) -> tuple[uuid.UUID, list[str]]:
    """A local model with stored files, as an upload leaves it."""
    model_id = uuid.uuid4()
    keys = []
    async with session_scope(components(app).session_factory) as session:
        session.add(
            Model(
                id=model_id,
                organization_id=organization,
                name=f"model-{model_id.hex[:8]}",
                source=ModelSource.LOCAL,
                scan_status=ScanStatus.PASSED,
                deleted_at=deleted_at,
            )
        )
        await session.flush()
        for index in range(files):
            file_id = uuid.uuid4()
            key = await store(storage, f"models/{organization}/{model_id}/{file_id}")
            keys.append(key)
            session.add(
                ModelFile(
                    id=file_id,
                    organization_id=organization,
                    model_id=model_id,
                    path=f"part-{index}.safetensors",
                    size=7,
                    sha256="0" * 64,
                    object_key=key,
                )
            )
    return model_id, keys


async def add_dataset(
    app: FastAPI, storage: ObjectStorage, organization: uuid.UUID, *, deleted_at: datetime
) -> tuple[uuid.UUID, str]:
    dataset_id, version_id = uuid.uuid4(), uuid.uuid4()
    key = await store(storage, f"datasets/{organization}/{dataset_id}/{version_id}")
    async with session_scope(components(app).session_factory) as session:
        session.add(
            Dataset(
                id=dataset_id,
                organization_id=organization,
                name=f"data-{dataset_id.hex[:8]}",
                latest_version=1,
                deleted_at=deleted_at,
            )
        )
        await session.flush()
        session.add(
            DatasetVersion(
                id=version_id,
                organization_id=organization,
                dataset_id=dataset_id,
                version=1,
                filename="data.jsonl",
                format=DatasetFormat.JSONL,
                size=7,
                sha256="0" * 64,
                row_count=1,
                object_key=key,
            )
        )
    return dataset_id, key


async def purge_records(app: FastAPI, action: str) -> int:
    async with components(app).session_factory() as session:
        statement = select(func.count()).where(AuditRecord.action == action)
        return int(await session.scalar(statement) or 0)


# --- orphans --------------------------------------------------------------------------------


async def test_unreferenced_objects_older_than_the_grace_period_are_deleted(
    app: FastAPI, storage: ObjectStorage, organization: uuid.UUID
) -> None:
    _, (kept,) = await add_model(app, storage, organization)
    # A soft-deleted model's files are still referenced: they go by retention, not as orphans.
    _, (deleted_model_file,) = await add_model(app, storage, organization, deleted_at=utcnow())
    orphans = [
        await store(storage, f"models/{organization}/{uuid.uuid4()}/{uuid.uuid4()}", b"12345"),
        await store(storage, f"datasets/{organization}/{uuid.uuid4()}/{uuid.uuid4()}", b"123"),
        # Not a name budapp builds (no id at the end): judged by its key alone.
        await store(storage, f"models/{organization}/stray-file"),
    ]

    report = await sweeper_for(app, storage).sweep(now=utcnow() + GRACE + timedelta(hours=1))

    assert [await exists(storage, key) for key in orphans] == [False, False, False]
    assert await exists(storage, kept)
    assert await exists(storage, deleted_model_file)
    assert (report.seen, report.orphans, report.purged, report.errors) == (5, 3, 0, 0)
    assert report.bytes_freed == 5 + 3 + 7


async def test_unreferenced_objects_younger_than_the_grace_period_are_kept(
    app: FastAPI, storage: ObjectStorage, organization: uuid.UUID
) -> None:
    # An upload in flight: its objects are written, its rows not yet committed.
    in_flight = await store(storage, f"models/{organization}/{uuid.uuid4()}/{uuid.uuid4()}")

    report = await sweeper_for(app, storage).sweep(now=utcnow() + GRACE - timedelta(hours=1))

    assert await exists(storage, in_flight)
    assert (report.seen, report.deleted) == (1, 0)


async def test_references_are_looked_up_once_per_page_of_listed_objects(
    app: FastAPI, storage: ObjectStorage, organization: uuid.UUID
) -> None:
    for _ in range(5):  # three pages of two
        await store(storage, f"models/{organization}/{uuid.uuid4()}/{uuid.uuid4()}")

    with sql_statements(components(app).engine) as statements:
        report = await sweeper_for(app, storage).sweep(now=utcnow() + timedelta(days=2))

    lookups = [s for s in statements if s.startswith("SELECT model_files.object_key")]
    assert (report.orphans, len(lookups)) == (5, 3)


async def test_objects_of_real_uploads_count_as_referenced(
    app: FastAPI, client: httpx.AsyncClient, world: World, backend: str
) -> None:
    # The lookup goes by the id at the end of each key: the upload paths must keep building
    # keys that end with their row's id, or the sweeper would take live files for orphans.
    headers = world["user"].headers
    before = stored_objects(app)  # the app's storage holds other tests' objects too
    uploaded = await upload_model(client, headers, {"model.safetensors": b"w" * 64})
    assert uploaded.status_code == 201, uploaded.text
    data = await client.post(
        "/datasets",
        data={"name": "sweep-data"},
        files={"file": ("d.jsonl", b'{"a": 1}\n')},
        headers=headers,
    )
    assert data.status_code == 201, data.text
    storage = components(app)[STORAGE]
    live = stored_objects(app) - before
    assert len(live) == 2, live

    await sweeper_for(app, storage).sweep(now=utcnow() + timedelta(days=2))

    assert all([await exists(storage, key) for key in live])


async def test_local_object_ages_come_from_their_mtimes(app: FastAPI, tmp_path: Path) -> None:
    storage = LocalObjectStorage(tmp_path / "objects")
    await storage.start()
    old = await store(storage, f"models/o/{uuid.uuid4()}/{uuid.uuid4()}")
    young = await store(storage, f"models/o/{uuid.uuid4()}/{uuid.uuid4()}")
    two_days_ago = (utcnow() - timedelta(days=2)).timestamp()
    os.utime(storage.root / old, (two_days_ago, two_days_ago))

    report = await sweeper_for(app, storage).sweep()

    assert not await exists(storage, old)
    assert await exists(storage, young)
    assert report.orphans == 1


# --- soft-deleted models and datasets -----------------------------------------------------


async def test_files_of_a_deleted_model_go_after_the_retention_and_only_once(
    app: FastAPI, storage: ObjectStorage, organization: uuid.UUID
) -> None:
    deleted_at = utcnow()
    model_id, keys = await add_model(app, storage, organization, deleted_at=deleted_at, files=3)
    sweeper = sweeper_for(app, storage)

    early = await sweeper.sweep(now=deleted_at + RETENTION - timedelta(hours=1))
    assert early.purged == 0
    assert [await exists(storage, key) for key in keys] == [True, True, True]

    first_run = deleted_at + RETENTION + timedelta(hours=1)
    report = await sweeper.sweep(now=first_run)
    assert (report.purged, report.bytes_freed, report.errors) == (3, 21, 0)
    assert [await exists(storage, key) for key in keys] == [False, False, False]

    again = await sweeper.sweep(now=first_run + timedelta(days=1))
    assert again.purged == 0
    async with components(app).session_factory() as session:
        model = await session.get(Model, model_id)
        assert model is not None
        assert model.files_purged_at == first_run
        # The rows stay: the record of what the model held.
        files = await session.scalar(select(func.count()).where(ModelFile.model_id == model_id))
        assert files == 3
        await session.rollback()
        candidates = await MODEL_FILES.deleted_with_files(
            session, first_run + timedelta(days=2), after=None, limit=10
        )
    assert candidates == []
    # Marked through the ORM: the audit trail says so, once.
    assert await purge_records(app, "model.files_purge") == 1


async def test_files_of_a_deleted_dataset_go_after_the_retention(
    app: FastAPI, storage: ObjectStorage, organization: uuid.UUID
) -> None:
    deleted_at = utcnow()
    dataset_id, key = await add_dataset(app, storage, organization, deleted_at=deleted_at)

    report = await sweeper_for(app, storage).sweep(now=deleted_at + RETENTION + timedelta(days=1))

    assert (report.purged, report.orphans) == (1, 0)
    assert not await exists(storage, key)
    async with components(app).session_factory() as session:
        dataset = await session.get(Dataset, dataset_id)
        assert dataset is not None
        assert dataset.files_purged_at is not None
    assert await purge_records(app, "dataset.files_purge") == 1


async def test_no_retention_keeps_deleted_models_files_forever(
    app: FastAPI, storage: ObjectStorage, organization: uuid.UUID
) -> None:
    deleted_at = utcnow()
    _, (key,) = await add_model(app, storage, organization, deleted_at=deleted_at)

    report = await sweeper_for(app, storage, retention=None).sweep(
        now=deleted_at + timedelta(days=3650)
    )

    assert await exists(storage, key)
    assert report.deleted == 0


# --- dry run, failures, abandoned uploads, logging ----------------------------------------


async def test_a_dry_run_counts_and_deletes_nothing(
    app: FastAPI, storage: ObjectStorage, organization: uuid.UUID
) -> None:
    deleted_at = utcnow()
    model_id, (model_file,) = await add_model(app, storage, organization, deleted_at=deleted_at)
    orphan = await store(storage, f"models/{organization}/{uuid.uuid4()}/{uuid.uuid4()}")
    now = deleted_at + RETENTION + timedelta(days=1)

    report = await sweeper_for(app, storage).sweep(now=now, dry_run=True)

    assert (report.dry_run, report.purged, report.orphans, report.bytes_freed) == (True, 1, 1, 14)
    assert await exists(storage, model_file)
    assert await exists(storage, orphan)
    async with components(app).session_factory() as session:
        model = await session.get(Model, model_id)
        assert model is not None
        assert model.files_purged_at is None


class RefusingDeletes:
    """The test's storage, except that deleting some keys fails (a denied S3 call, say)."""

    def __init__(self, storage: ObjectStorage, refused: set[str]) -> None:
        self._storage = storage
        self.refused = refused

    def __getattr__(self, name: str) -> object:
        return getattr(self._storage, name)

    async def delete(self, key: str) -> None:
        if key in self.refused:
            raise StorageError(f"S3 delete_object failed: AccessDenied ({key})")
        await self._storage.delete(key)


async def test_a_failing_delete_is_counted_and_the_run_goes_on(
    app: FastAPI, storage: ObjectStorage, organization: uuid.UUID
) -> None:
    deleted_at = utcnow()
    model_id, (refused_file, other_file) = await add_model(
        app, storage, organization, deleted_at=deleted_at, files=2
    )
    refused_orphan = await store(storage, f"models/{organization}/{uuid.uuid4()}/{uuid.uuid4()}")
    orphan = await store(storage, f"models/{organization}/{uuid.uuid4()}/{uuid.uuid4()}")
    refusing = RefusingDeletes(storage, {refused_file, refused_orphan})
    now = deleted_at + RETENTION + timedelta(days=1)

    report = await sweeper_for(app, refusing).sweep(now=now)  # type: ignore[arg-type]

    assert (report.errors, report.orphans, report.purged) == (2, 1, 1)
    assert report.first_error is not None
    assert "AccessDenied" in report.first_error
    assert not await exists(storage, orphan)
    assert not await exists(storage, other_file)
    assert await exists(storage, refused_orphan)
    # Not every file went: the model stays unmarked, and the next run finishes the job.
    async with components(app).session_factory() as session:
        assert (await session.get(Model, model_id)).files_purged_at is None  # type: ignore[union-attr]
    refusing.refused.clear()
    retry = await sweeper_for(app, refusing).sweep(now=now)  # type: ignore[arg-type]
    assert (retry.errors, retry.purged, retry.orphans) == (0, 1, 1)
    assert await purge_records(app, "model.files_purge") == 1


async def test_abandoned_local_uploads_are_removed_after_the_grace_period(
    app: FastAPI, tmp_path: Path
) -> None:
    storage = LocalObjectStorage(tmp_path / "objects")
    await storage.start()
    incoming = storage.root / ".incoming"
    old, young = incoming / uuid.uuid4().hex, incoming / uuid.uuid4().hex
    old.write_bytes(b"half of a crashed upload")
    young.write_bytes(b"an upload in flight")
    two_days_ago = (utcnow() - timedelta(days=2)).timestamp()
    os.utime(old, (two_days_ago, two_days_ago))

    dry = await sweeper_for(app, storage).sweep(dry_run=True)
    assert (dry.abandoned, old.exists()) == (1, True)
    report = await sweeper_for(app, storage).sweep()

    assert (report.abandoned, report.bytes_freed) == (1, len(b"half of a crashed upload"))
    assert not old.exists()
    assert young.exists()


async def test_one_log_line_per_run_with_the_counts(
    app: FastAPI,
    storage: ObjectStorage,
    organization: uuid.UUID,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The app logs at WARNING in tests: the sweeper's logger is swapped for one that keeps all.
    capture = structlog.testing.LogCapture()
    everything = structlog.make_filtering_bound_logger(logging.DEBUG)
    logger = structlog.wrap_logger(None, processors=[capture], wrapper_class=everything)
    monkeypatch.setattr(sweeper_module, "log", logger)
    await store(storage, f"models/{organization}/{uuid.uuid4()}/{uuid.uuid4()}")
    refusing = RefusingDeletes(storage, set())
    refusing.refused.add(await store(storage, f"models/{organization}/{uuid.uuid4()}/x"))

    await sweeper_for(app, refusing).sweep(now=utcnow() + timedelta(days=2))  # type: ignore[arg-type]

    assert [line["event"] for line in capture.entries] == ["storage_swept"]
    line = capture.entries[0]
    assert (line["seen"], line["deleted"], line["errors"]) == (2, 1, 1)
    assert "AccessDenied" in line["first_error"]
    assert SECRET_KEY not in repr(line)
    assert ACCESS_KEY not in repr(line)


# --- in `budapp serve` ----------------------------------------------------------------------


@pytest.fixture
def quick_first_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweeper_module, "FIRST_SWEEP_DELAY_SECONDS", 0.0)


async def test_the_background_sweep_runs_and_stops(
    app: FastAPI, tmp_path: Path, quick_first_sweep: None
) -> None:
    storage = LocalObjectStorage(tmp_path / "objects")
    await storage.start()
    orphan = await store(storage, f"models/o/{uuid.uuid4()}/{uuid.uuid4()}")
    two_days_ago = (utcnow() - timedelta(days=2)).timestamp()
    os.utime(storage.root / orphan, (two_days_ago, two_days_ago))
    sweeper = StorageSweeper(
        components(app).session_factory,
        storage,
        [MODEL_FILES],
        grace=GRACE,
        retention=RETENTION,
        every_seconds=3600,
    )
    await sweeper.start()
    try:
        for _ in range(200):
            if not await exists(storage, orphan):
                break
            await asyncio.sleep(0.01)
        assert not await exists(storage, orphan)
    finally:
        await sweeper.close()
    assert not sweeper._task.running


async def test_interval_zero_sweeps_nothing_in_the_background(app: FastAPI) -> None:
    assert not components(app)[STORAGE_SWEEPER]._task.running
