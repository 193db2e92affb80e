"""The scan queue lives in the database: scans queued before a restart, or left running by a
replica that died, are picked up; storage failures are retried, then reported."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from budapp.adapters.storage import LocalObjectStorage, StorageError
from budapp.catalog.models import JobStatus, ScanJob
from budapp.catalog.scanning import SCAN_WORKER, ScanLimits, ScanWorker
from budapp.core.components import STORAGE, components
from budapp.core.db import utcnow
from tests.catalog import samples
from tests.catalog.helpers import upload_model
from tests.factories import World


class UnreachableStorage(LocalObjectStorage):
    """The local backend with reads failing, as an S3 outage would."""

    async def read(self, key: str) -> AsyncIterator[bytes]:
        raise StorageError(f"connection refused reading {key}")
        yield b""  # pragma: no cover - makes this an async generator


def limits(max_attempts: int = 3) -> ScanLimits:
    return ScanLimits(
        zip_max_ratio=100,
        zip_max_bytes=10**12,
        lease_seconds=60,
        max_attempts=max_attempts,
        poll_seconds=0.01,
    )


@pytest.fixture
async def paused_worker(app: FastAPI) -> AsyncIterator[None]:
    await components(app)[SCAN_WORKER].close()
    yield
    await components(app)[SCAN_WORKER].start()


async def queued_model(client: httpx.AsyncClient, world: World) -> str:
    files = {"pytorch_model.bin": samples.torch_archive(samples.tensor_pickle())}
    response = await upload_model(client, world["user"].headers, files)
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


async def job_of(app: FastAPI, model_id: str) -> ScanJob:
    async with components(app).session_factory() as session:
        job = await session.scalar(select(ScanJob).where(ScanJob.model_id == uuid.UUID(model_id)))
        assert job is not None
        return job


async def status_of(client: httpx.AsyncClient, world: World, model_id: str) -> str:
    response = await client.get(f"/models/{model_id}", headers=world["user"].headers)
    return str(response.json()["data"]["scan_status"])


async def test_scan_queued_before_a_restart_runs_in_the_new_worker(
    app: FastAPI, client: httpx.AsyncClient, world: World, paused_worker: None, tmp_path: Path
) -> None:
    model_id = await queued_model(client, world)
    assert (await job_of(app, model_id)).status is JobStatus.QUEUED
    restarted = ScanWorker(
        components(app).session_factory, components(app)[STORAGE], tmp_path, limits()
    )
    assert await restarted.run_once() is True
    assert await restarted.run_once() is False
    assert (await job_of(app, model_id)).status is JobStatus.DONE
    assert await status_of(client, world, model_id) == "passed"


async def test_a_running_scan_is_taken_over_only_after_its_lease(
    app: FastAPI, client: httpx.AsyncClient, world: World, paused_worker: None, tmp_path: Path
) -> None:
    model_id = await queued_model(client, world)
    job = await job_of(app, model_id)
    async with components(app).session_factory() as session:
        row = await session.get(ScanJob, job.id)
        assert row is not None
        row.status = JobStatus.RUNNING
        row.lease_until = utcnow() + timedelta(minutes=5)
        await session.commit()
    worker = ScanWorker(
        components(app).session_factory, components(app)[STORAGE], tmp_path, limits()
    )
    assert await worker.run_once() is False  # another replica holds it
    async with components(app).session_factory() as session:
        row = await session.get(ScanJob, job.id)
        assert row is not None
        row.lease_until = utcnow() - timedelta(seconds=1)  # that replica died
        await session.commit()
    assert await worker.run_once() is True
    assert await status_of(client, world, model_id) == "passed"


async def test_storage_failures_are_retried_then_reported(
    app: FastAPI, client: httpx.AsyncClient, world: World, paused_worker: None, tmp_path: Path
) -> None:
    model_id = await queued_model(client, world)
    broken = UnreachableStorage(components(app)[STORAGE].root)
    worker = ScanWorker(components(app).session_factory, broken, tmp_path, limits(max_attempts=2))
    assert await worker.run_once() is True
    job = await job_of(app, model_id)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)
    assert "connection refused" in (job.error or "")
    assert await status_of(client, world, model_id) == "pending"
    assert await worker.run_once() is True
    assert (await job_of(app, model_id)).status is JobStatus.DONE
    response = await client.get(f"/models/{model_id}", headers=world["user"].headers)
    model = response.json()["data"]
    assert model["scan_status"] == "failed"
    assert [f["code"] for f in model["scan_findings"]] == ["scan_error"]


async def test_two_workers_never_take_the_same_scan(
    app: FastAPI, client: httpx.AsyncClient, world: World, paused_worker: None, tmp_path: Path
) -> None:
    model_id = await queued_model(client, world)
    first = ScanWorker(
        components(app).session_factory, components(app)[STORAGE], tmp_path, limits()
    )
    second = ScanWorker(
        components(app).session_factory, components(app)[STORAGE], tmp_path, limits()
    )
    now = utcnow()
    job = await job_of(app, model_id)
    async with components(app).session_factory() as session:
        from budapp.catalog.repository import ScanJobRepository  # noqa: PLC0415

        repository = ScanJobRepository(session)
        assert await repository.claim(job.id, now, now + timedelta(minutes=1)) is True
        assert await repository.claim(job.id, now, now + timedelta(minutes=1)) is False
        await session.rollback()
    assert [await first.run_once(), await second.run_once()] == [True, False]
