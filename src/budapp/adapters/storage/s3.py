"""Objects in an S3 bucket (AWS S3, MinIO, any S3 API), through boto3.

boto3 is synchronous: each request runs in a worker thread. Uploads larger than one part go
up as a multipart upload with a few parts in flight while the next is received; boto3 retries
each request (so each part) on its own, and an aborted upload leaves no parts behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from budapp.adapters.storage.base import (
    CHUNK_SIZE,
    LIST_PAGE_SIZE,
    AbandonedUploads,
    ChecksumMismatch,
    Digest,
    InvalidKey,
    ListedObject,
    ObjectMissing,
    StorageError,
    StoredObject,
    check_key,
    check_prefix,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef


class S3ObjectStorage:
    backend = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        part_size: int = 8 * 1024 * 1024,
        max_attempts: int = 5,
        create_bucket: bool = False,
        concurrency: int = 2,
    ) -> None:
        self.bucket = bucket
        self.part_size = part_size
        self.concurrency = concurrency
        self.create_bucket = create_bucket
        config = Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            # One connection per concurrent part or download, plus headroom.
            max_pool_connections=32,
        )
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )

    async def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self.client, method), **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {
                "NoSuchKey",
                "NoSuchUpload",
                "404",
                "NotFound",
            }:
                raise ObjectMissing(kwargs.get("Key", "")) from None
            raise StorageError(f"S3 {method} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 {method} failed: {exc}") from exc

    def writer(self, key: str, *, max_bytes: int | None = None) -> S3ObjectWriter:
        return S3ObjectWriter(self, check_key(key), max_bytes)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        response = await self._call("get_object", Bucket=self.bucket, Key=check_key(key))
        body = response["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK_SIZE):
                yield chunk
        finally:
            body.close()

    async def size_of(self, key: str) -> int | None:
        try:
            head = await self._call("head_object", Bucket=self.bucket, Key=check_key(key))
        except ObjectMissing:
            return None
        return int(head["ContentLength"])

    async def delete(self, key: str) -> None:
        await self._call("delete_object", Bucket=self.bucket, Key=check_key(key))

    async def list(self, prefix: str) -> AsyncIterator[ListedObject]:
        request: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": f"{check_prefix(prefix)}/",
            "MaxKeys": LIST_PAGE_SIZE,
        }
        while True:
            page = await self._call("list_objects_v2", **request)
            for item in page.get("Contents", []):
                if _is_key(item["Key"]):
                    modified = item["LastModified"].astimezone(UTC)
                    yield ListedObject(item["Key"], int(item["Size"]), modified)
            if not page.get("IsTruncated"):
                return
            request["ContinuationToken"] = page["NextContinuationToken"]

    async def remove_abandoned_uploads(
        self, before: datetime, *, prefixes: Sequence[str], dry_run: bool = False
    ) -> AbandonedUploads:
        """Multipart uploads never completed nor aborted (their writer died): their parts are
        stored, and billed, until aborted."""
        result = AbandonedUploads()
        for prefix in prefixes:
            request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": f"{check_prefix(prefix)}/"}
            while True:
                page = await self._call("list_multipart_uploads", **request)
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < before:
                        await self._abort_abandoned(
                            upload["Key"], upload["UploadId"], result, dry_run
                        )
                if not page.get("IsTruncated"):
                    break
                request["KeyMarker"] = page["NextKeyMarker"]
                request["UploadIdMarker"] = page["NextUploadIdMarker"]
        return result

    async def _abort_abandoned(
        self, key: str, upload_id: str, result: AbandonedUploads, dry_run: bool
    ) -> None:
        try:
            if not dry_run:
                await self._call(
                    "abort_multipart_upload", Bucket=self.bucket, Key=key, UploadId=upload_id
                )
        except ObjectMissing:
            return  # completed or aborted meanwhile (NoSuchUpload)
        except StorageError as exc:
            result.errors += 1
            result.first_error = result.first_error or str(exc)
            return
        result.removed += 1

    async def start(self) -> None:
        try:
            await self.ping()
        except ObjectMissing:
            if not self.create_bucket:
                raise StorageError(f"the S3 bucket {self.bucket!r} does not exist") from None
            await self._call("create_bucket", Bucket=self.bucket)

    async def ping(self) -> None:
        await self._call("head_bucket", Bucket=self.bucket)

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)


def _is_key(key: str) -> bool:
    try:
        check_key(key)
    except InvalidKey:
        return False
    return True


class S3ObjectWriter:
    def __init__(self, storage: S3ObjectStorage, key: str, max_bytes: int | None) -> None:
        self.storage = storage
        self.key = key
        self.digest = Digest(max_bytes)
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._in_flight: list[asyncio.Task[None]] = []

    @property
    def size(self) -> int:
        return self.digest.size

    async def write(self, data: bytes) -> None:
        self.digest.count(len(data))
        self._buffer += data
        if len(self._buffer) >= self.storage.part_size:
            await self._send_part()

    async def _send_part(self) -> None:
        if self._upload_id is None:
            started = await self.storage._call(
                "create_multipart_upload", Bucket=self.storage.bucket, Key=self.key
            )
            self._upload_id = started["UploadId"]
        body, self._buffer = bytes(self._buffer), bytearray()
        # Hashed here, in order, before the part leaves; parts themselves go up concurrently.
        await asyncio.to_thread(self.digest.absorb, body)
        while len(self._in_flight) >= self.storage.concurrency:
            await self._in_flight.pop(0)
        number = len(self._parts) + 1
        self._parts.append({"PartNumber": number, "ETag": ""})
        self._in_flight.append(asyncio.create_task(self._upload_part(number, body)))

    async def _upload_part(self, number: int, body: bytes) -> None:
        response = await self.storage._call(
            "upload_part",
            Bucket=self.storage.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        self._parts[number - 1] = {"PartNumber": number, "ETag": response["ETag"]}

    async def _wait_in_flight(self) -> None:
        tasks, self._in_flight = self._in_flight, []
        await asyncio.gather(*tasks)

    async def commit(self, expected_sha256: str | None = None) -> StoredObject:
        bucket = self.storage.bucket
        if self._upload_id is None:
            body, self._buffer = bytes(self._buffer), bytearray()
            self.digest.absorb(body)
            self.digest.verify(expected_sha256)
            await self.storage._call("put_object", Bucket=bucket, Key=self.key, Body=body)
        else:
            if self._buffer:
                await self._send_part()
            await self._wait_in_flight()
            try:
                self.digest.verify(expected_sha256)
            except ChecksumMismatch:
                await self.abort()
                raise
            await self.storage._call(
                "complete_multipart_upload",
                Bucket=bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
            self._upload_id = None
        stored = await self.storage.size_of(self.key)
        if stored != self.digest.size:
            await self.storage.delete(self.key)
            raise StorageError(f"S3 stored {stored} bytes of {self.digest.size}")
        return StoredObject(self.key, self.digest.size, self.digest.hexdigest())

    async def abort(self) -> None:
        self._buffer = bytearray()
        tasks, self._in_flight = self._in_flight, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            await self.storage._call(
                "abort_multipart_upload",
                Bucket=self.storage.bucket,
                Key=self.key,
                UploadId=upload_id,
            )
