"""Object storage: one interface, a local-directory backend and an S3 backend.

Objects are written through an `ObjectWriter` (chunks in, SHA-256 and size counted on the way,
nothing visible under the key until `commit`) and read as a stream of chunks, so no object is
ever held whole in memory."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# Keys are built by budapp from ids (`models/<org>/<model>/<file>`); anything else is refused,
# so a key can never climb out of the bucket or the storage directory.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CHUNK_SIZE = 1024 * 1024
# Objects fetched per listing request (S3's own maximum), and per thread hop locally.
LIST_PAGE_SIZE = 1000


class StorageError(Exception):
    """The backend failed (unreachable, denied, corrupted)."""


class InvalidKey(StorageError):
    pass


class ObjectMissing(StorageError):
    pass


class ChecksumMismatch(StorageError):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"SHA-256 mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class TooLarge(StorageError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the object exceeds {limit} bytes")
        self.limit = limit


def check_key(key: str) -> str:
    segments = key.split("/")
    if not segments or not all(_SEGMENT.match(s) and s not in {".", ".."} for s in segments):
        raise InvalidKey(f"unsafe object key {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A prefix is one or more whole key segments (`models`, `models/<org>`): listing never
    matches part of a segment, and never climbs out like a key cannot."""
    return check_key(prefix)


def key_id(key: str) -> uuid.UUID | None:
    """The id that ends a key budapp built (`models/<org>/<model>/<file id>`), if it is one."""
    try:
        return uuid.UUID(key.rsplit("/", 1)[-1])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ListedObject:
    key: str
    size: int
    modified: datetime  # timezone-aware UTC


@dataclass(slots=True)
class AbandonedUploads:
    """Partial uploads left by a crashed writer (local temporary files, S3 multipart uploads),
    removed or, on a dry run, found. S3 does not say how many bytes an upload's parts hold."""

    removed: int = 0
    bytes: int = 0
    errors: int = 0
    first_error: str | None = None


class Digest:
    """Size and SHA-256 of the bytes seen so far, with an optional size cap."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self._hash = hashlib.sha256()
        self.size = 0
        self.max_bytes = max_bytes

    def update(self, data: bytes) -> None:
        self.count(len(data))
        self.absorb(data)

    def count(self, size: int) -> None:
        self.size += size
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise TooLarge(self.max_bytes)

    def absorb(self, data: bytes) -> None:
        # hashlib releases the GIL on large buffers: writers call this in a worker thread,
        # so hashing overlaps with receiving the next chunk.
        self._hash.update(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def verify(self, expected: str | None) -> None:
        if expected is not None and expected.lower() != self.hexdigest():
            raise ChecksumMismatch(expected.lower(), self.hexdigest())


class ObjectWriter(Protocol):
    """An object being written. `commit` makes it visible under its key; `abort` (also safe
    after a failed `write` or `commit`) leaves nothing behind."""

    @property
    def size(self) -> int: ...

    async def write(self, data: bytes) -> None: ...

    async def commit(self, expected_sha256: str | None = None) -> StoredObject: ...

    async def abort(self) -> None: ...


class ObjectStorage(Protocol):
    backend: str

    def writer(self, key: str, *, max_bytes: int | None = None) -> ObjectWriter: ...

    def read(self, key: str) -> AsyncIterator[bytes]: ...

    async def size_of(self, key: str) -> int | None: ...

    async def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> AsyncIterator[ListedObject]:
        """The objects under `prefix/`, streamed a page at a time (never all keys at once).
        Objects whose names budapp could not have written are left out."""
        ...

    async def remove_abandoned_uploads(
        self, before: datetime, *, prefixes: Sequence[str], dry_run: bool = False
    ) -> AbandonedUploads:
        """Removes partial uploads to keys under `prefixes` started before `before` (an upload
        still being written is younger than any sensible `before`)."""
        ...

    async def start(self) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


async def put(
    storage: ObjectStorage,
    key: str,
    chunks: AsyncIterable[bytes],
    *,
    expected_sha256: str | None = None,
    max_bytes: int | None = None,
) -> StoredObject:
    writer = storage.writer(key, max_bytes=max_bytes)
    try:
        async for chunk in chunks:
            await writer.write(chunk)
        return await writer.commit(expected_sha256)
    except BaseException:
        await writer.abort()
        raise


async def read_verified(storage: ObjectStorage, key: str, sha256: str) -> AsyncIterator[bytes]:
    """The object's chunks; raises ChecksumMismatch after the last one if the stored bytes are
    not the ones recorded (a stream already sent is then cut short, which clients notice)."""
    digest = Digest()
    async for chunk in storage.read(key):
        digest.update(chunk)
        yield chunk
    digest.verify(sha256)
