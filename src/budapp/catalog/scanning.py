"""The safety scan as a background job: an asyncio worker per replica claims queued scans
from the database (so that scans queued before a restart, or left by a replica that died,
are picked up), copies each file of the model from object storage to a private temporary
directory, inspects it without loading it, and records the verdict and the facts found."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.adapters.storage import ChecksumMismatch, ObjectStorage, read_verified
from budapp.catalog.inspection import Inspection, inspect_file
from budapp.catalog.models import JobStatus, Model, ModelFile, ScanStatus
from budapp.catalog.repository import ScanJobRepository
from budapp.core.background import BackgroundTask
from budapp.core.components import STORAGE, Components, Key
from budapp.core.db import utcnow
from budapp.core.logging import get_logger

log = get_logger("budapp.scan")

# Facts read from the files fill only what nobody typed in by hand.
_FACT_COLUMNS = (
    "architecture",
    "parameter_count",
    "context_length",
    "quantization",
    "dtype",
    "file_format",
    "license",
)


@dataclass(frozen=True, slots=True)
class ScanLimits:
    zip_max_ratio: int
    zip_max_bytes: int
    lease_seconds: int
    max_attempts: int
    poll_seconds: float


class ScanWorker:
    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        storage: ObjectStorage,
        workdir: Path,
        limits: ScanLimits,
    ) -> None:
        self.factory = factory
        self.storage = storage
        self.workdir = workdir
        self.limits = limits
        self._wake = asyncio.Event()
        self._task = BackgroundTask("budapp-scan-worker")

    async def start(self) -> None:
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._task.start(self._run)

    async def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            try:
                if await self.run_once():
                    continue
            except Exception as exc:  # a database hiccup must not end the worker
                log.error("scan_worker_error", error=str(exc)[:500])
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.limits.poll_seconds)

    async def run_once(self) -> bool:
        """Claims and runs one scan; False when none is waiting."""
        job_id = await self._claim()
        if job_id is None:
            return False
        async with self.factory() as session:
            repository = ScanJobRepository(session)
            job = await repository.get(job_id)
            model = await repository.model(job.model_id) if job else None
            files = list(await repository.files(model.id)) if model else []
            attempts = job.attempts if job else 0
        if model is None or model.is_deleted:
            await self._finish(job_id, None, None)
            return True
        try:
            report = await self._inspect(files)
        except Exception as exc:  # storage unreachable and the like: retried, then failed
            log.warning("scan_attempt_failed", model_id=str(model.id), error=str(exc)[:500])
            if attempts < self.limits.max_attempts:
                await self._requeue(job_id, str(exc))
                return True
            report = Inspection()
            report.fail("*", "scan_error", f"the scan could not complete: {exc}"[:500])
        await self._finish(job_id, model.id, report)
        return True

    async def _claim(self) -> uuid.UUID | None:
        async with self.factory() as session:
            repository = ScanJobRepository(session)
            now = utcnow()
            job = await repository.next_claimable(now)
            if job is None:
                return None
            lease = now + timedelta(seconds=self.limits.lease_seconds)
            claimed = await repository.claim(job.id, now, lease)
            await session.commit()
            return job.id if claimed else None

    async def _inspect(self, files: list[ModelFile]) -> Inspection:
        report = Inspection()
        directory = Path(tempfile.mkdtemp(dir=self.workdir))
        try:
            for index, stored in enumerate(files):
                local = directory / f"{index}{Path(stored.path).suffix}"
                try:
                    await self._copy(stored, local)
                except ChecksumMismatch as exc:
                    report.fail(stored.path, "checksum_mismatch", f"stored object altered: {exc}")
                    continue
                await asyncio.to_thread(
                    inspect_file,
                    report,
                    local,
                    stored.path,
                    zip_max_ratio=self.limits.zip_max_ratio,
                    zip_max_bytes=self.limits.zip_max_bytes,
                )
                local.unlink()
        finally:
            await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)
        return report

    async def _copy(self, stored: ModelFile, local: Path) -> None:
        handle = await asyncio.to_thread(local.open, "xb")
        try:
            async for chunk in read_verified(self.storage, stored.object_key, stored.sha256):
                await asyncio.to_thread(handle.write, chunk)
        finally:
            handle.close()

    async def _requeue(self, job_id: uuid.UUID, error: str) -> None:
        async with self.factory() as session:
            job = await ScanJobRepository(session).get(job_id)
            if job is not None:
                job.status = JobStatus.QUEUED
                job.lease_until = None
                job.error = error[:2000]
            await session.commit()
        await asyncio.sleep(min(self.limits.poll_seconds, 1.0))

    async def _finish(
        self, job_id: uuid.UUID, model_id: uuid.UUID | None, report: Inspection | None
    ) -> None:
        async with self.factory() as session:
            repository = ScanJobRepository(session)
            job = await repository.get(job_id)
            if job is not None:
                job.status = JobStatus.DONE
                job.lease_until = None
            model = await repository.model(model_id) if model_id else None
            if model is not None and report is not None:
                record_verdict(model, report)
                log.info(
                    "model_scanned",
                    model_id=str(model.id),
                    status=model.scan_status.value,
                    findings=len(report.findings),
                )
            await session.commit()


def record_verdict(model: Model, report: Inspection) -> None:
    model.scan_status = ScanStatus.FAILED if report.findings else ScanStatus.PASSED
    model.scan_findings = report.findings
    model.scanned_at = utcnow()
    facts: dict[str, Any] = report.summary()
    for column in _FACT_COLUMNS:
        value = facts.get(column)
        if value is not None and getattr(model, column) is None:
            setattr(model, column, _fit(column, value))


def _fit(column: str, value: Any) -> Any:
    if column in {"parameter_count", "context_length"}:
        return int(value) if isinstance(value, int | float) else None
    return str(value)[: _LENGTHS.get(column, 64)]


_LENGTHS = {"dtype": 32, "file_format": 32, "architecture": 255, "license": 128}


SCAN_WORKER: Key[ScanWorker] = Key("scan worker")


def scan_worker(components: Components) -> ScanWorker:
    """The safety-scan worker of uploaded model files."""
    settings = components.settings
    return components.provide(
        SCAN_WORKER,
        ScanWorker(
            components.session_factory,
            components[STORAGE],
            settings.data_dir / "scans",
            ScanLimits(
                zip_max_ratio=settings.scan_zip_max_ratio,
                zip_max_bytes=settings.scan_zip_max_bytes,
                lease_seconds=settings.scan_lease_seconds,
                max_attempts=settings.scan_max_attempts,
                poll_seconds=settings.scan_poll_seconds,
            ),
        ),
    )
