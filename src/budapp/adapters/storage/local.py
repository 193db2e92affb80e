"""Objects as files under one directory (the embedded default)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from budapp.adapters.storage.base import (
    CHUNK_SIZE,
    LIST_PAGE_SIZE,
    AbandonedUploads,
    Digest,
    InvalidKey,
    ListedObject,
    ObjectMissing,
    StoredObject,
    check_key,
    check_prefix,
)

_INCOMING = ".incoming"


class LocalObjectStorage:
    backend = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        # check_key already refuses "..": this is the belt to its braces.
        if not path.is_relative_to(self.root.resolve()):
            raise ObjectMissing(key)
        return path

    def writer(self, key: str, *, max_bytes: int | None = None) -> LocalObjectWriter:
        return LocalObjectWriter(
            self._path(key), self.root / _INCOMING / uuid.uuid4().hex, key, max_bytes
        )

    async def read(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_SIZE):
                yield chunk
        finally:
            handle.close()

    async def size_of(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def list(self, prefix: str) -> AsyncIterator[ListedObject]:
        top = self._path(check_prefix(prefix))
        found = _walk(top, prefix)
        try:
            while page := await asyncio.to_thread(_take, found, LIST_PAGE_SIZE):
                for listed in page:
                    yield listed
        finally:
            found.close()

    async def remove_abandoned_uploads(
        self,
        before: datetime,
        *,
        prefixes: Sequence[str],  # noqa: ARG002 - every temporary file is one of ours
        dry_run: bool = False,
    ) -> AbandonedUploads:
        return await asyncio.to_thread(
            _remove_old_files, self.root / _INCOMING, before.timestamp(), dry_run
        )

    async def start(self) -> None:
        # 0700: the objects are an organisation's weights and data.
        (self.root / _INCOMING).mkdir(mode=0o700, parents=True, exist_ok=True)

    async def ping(self) -> None:
        if not await asyncio.to_thread(self.root.is_dir):
            raise ObjectMissing(str(self.root))

    async def close(self) -> None:
        return None


class LocalObjectWriter:
    """Writes into a private temporary file, renamed onto the key on commit (atomic: a reader
    never sees half an object). One block is hashed and written in a worker thread while the
    next is received."""

    def __init__(self, target: Path, temporary: Path, key: str, max_bytes: int | None) -> None:
        self.target = target
        self.temporary = temporary
        self.key = key
        self.digest = Digest(max_bytes)
        self._buffer = bytearray()
        self._handle: BinaryIO | None = None
        self._in_flight: asyncio.Future[None] | None = None

    @property
    def size(self) -> int:
        return self.digest.size

    async def write(self, data: bytes) -> None:
        self.digest.count(len(data))
        self._buffer += data
        if len(self._buffer) >= CHUNK_SIZE:
            await self._flush()

    async def _flush(self) -> None:
        await self._settle()
        if self._handle is None:
            self._handle = await asyncio.to_thread(self.temporary.open, "xb")
        data, self._buffer = bytes(self._buffer), bytearray()
        self._in_flight = asyncio.ensure_future(asyncio.to_thread(self._store, self._handle, data))

    def _store(self, handle: BinaryIO, data: bytes) -> None:
        self.digest.absorb(data)
        handle.write(data)

    async def _settle(self) -> None:
        pending, self._in_flight = self._in_flight, None
        if pending is not None:
            await pending

    async def commit(self, expected_sha256: str | None = None) -> StoredObject:
        await self._flush()
        await self._settle()
        self.digest.verify(expected_sha256)
        handle, self._handle = self._handle, None
        if handle is None:  # pragma: no cover - _flush always opens it
            raise ObjectMissing(self.key)
        await asyncio.to_thread(_finish, handle, self.temporary, self.target)
        return StoredObject(self.key, self.digest.size, self.digest.hexdigest())

    async def abort(self) -> None:
        pending, self._in_flight = self._in_flight, None
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        await asyncio.to_thread(self.temporary.unlink, missing_ok=True)


def _walk(directory: Path, prefix: str) -> Generator[ListedObject]:
    """Files under `directory` as objects, one directory entry at a time (os.scandir), so a
    listing holds no more than the directories it is inside."""
    try:
        entries = os.scandir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return
    with entries:
        for entry in entries:
            key = f"{prefix}/{entry.name}"
            try:
                if entry.is_dir(follow_symlinks=False):
                    yield from _walk(Path(entry.path), key)
                elif entry.is_file(follow_symlinks=False):
                    status = entry.stat(follow_symlinks=False)
                    check_key(key)
                    modified = datetime.fromtimestamp(status.st_mtime, UTC)
                    yield ListedObject(key, status.st_size, modified)
            except FileNotFoundError:
                continue  # deleted while we listed
            except InvalidKey:
                continue  # not a name budapp writes: not ours to judge


def _take(found: Iterator[ListedObject], count: int) -> list[ListedObject]:
    return list(islice(found, count))


def _remove_old_files(directory: Path, before: float, dry_run: bool) -> AbandonedUploads:
    result = AbandonedUploads()
    try:
        entries = os.scandir(directory)
    except FileNotFoundError:
        return result
    with entries:
        for entry in entries:
            try:
                status = entry.stat(follow_symlinks=False)
                if not entry.is_file(follow_symlinks=False) or status.st_mtime >= before:
                    continue
                if not dry_run:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue  # its writer finished or aborted meanwhile
            except OSError as exc:
                result.errors += 1
                result.first_error = result.first_error or f"{entry.name}: {exc.strerror}"
                continue
            result.removed += 1
            result.bytes += status.st_size
    return result


def _finish(handle: BinaryIO, temporary: Path, target: Path) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary.replace(target)
