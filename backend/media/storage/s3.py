"""Storage in an S3 bucket (MinIO in docker-compose, or any S3 endpoint) via aioboto3.

A stream shorter than one part is hashed in memory and put straight at its content
address. A longer one goes up as a multipart upload to ``tmp/<random>`` while it is
hashed — one part in memory at a time — and is then copied server-side to its content
address (unless the bytes are there already) and the temporary object deleted. A failed or
oversize stream aborts its multipart upload, which drops every part sent.

Tip for operators: a bucket lifecycle rule that aborts incomplete multipart uploads after a
day and expires ``tmp/`` catches what a crashed process could not clean up.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aioboto3
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from backend.core.errors import NotFound
from backend.media.storage import keys, streams
from backend.media.storage.base import (
    MAX_PARTS,
    MIB,
    MIN_PART_SIZE,
    Storage,
    StoredObject,
    check_range,
)
from backend.media.storage.errors import RangeNotSatisfiable, TooLarge
from backend.media.storage.s3_client import S3Client, S3Endpoint, error_code, translated
from backend.media.storage.s3_multipart import S3Multipart

# CopyObject copies up to 5 GiB in one request; larger objects are copied in parts.
_MAX_SINGLE_COPY = 5 * 1024 * MIB
_LARGE_COPY = TransferConfig(multipart_threshold=_MAX_SINGLE_COPY, multipart_chunksize=512 * MIB)


class S3Storage(S3Multipart, Storage):
    supports_multipart = True

    def __init__(
        self,
        endpoint: S3Endpoint,
        *,
        public_endpoint_url: str | None = None,
        part_size: int = 8 * MIB,
        scratch_dir: Path | None = None,
        chunk_size: int = streams.READ_CHUNK,
        session: aioboto3.Session | None = None,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts are at least {MIN_PART_SIZE} bytes")
        self.endpoint = endpoint
        self.bucket = endpoint.bucket
        self.part_size = part_size
        self.scratch_dir = scratch_dir
        self.chunk_size = chunk_size
        self._client = S3Client(endpoint, session=session)
        public = public_endpoint_url or endpoint.endpoint_url
        # Presigned URLs name the host the browser talks to; signing makes no request.
        self._presigner = (
            self._client
            if public == endpoint.endpoint_url
            else S3Client(replace(endpoint, endpoint_url=public), session=session)
        )

    async def _s3(self) -> Any:
        return await self._client.get()

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._presigner.aclose()

    # -- writing -----------------------------------------------------------------

    async def put_stream(
        self, chunks: AsyncIterator[bytes], *, max_bytes: int | None
    ) -> StoredObject:
        measured = streams.Measured(chunks, max_bytes=max_bytes)
        parts = streams.regroup(aiter(measured), self.part_size)
        first = await anext(parts, b"")
        if len(first) < self.part_size:  # the whole stream, and it is small
            key = keys.content_key(measured.sha256)
            if not await self.exists(key):
                await self._put_object(key, first, None)
        else:
            temp = keys.temp_key()
            parts = streams.prepend(first, parts)
            del first  # one part in memory at a time
            await self._upload_parts(temp, parts, None)
            key = keys.content_key(measured.sha256)
            try:
                if not await self.exists(key):
                    await self._copy(temp, key, measured.size)
            finally:
                await self.delete(temp)
        return StoredObject(key=key, sha256=measured.sha256, size=measured.size)

    async def _put_at(
        self, key: str, chunks: AsyncIterator[bytes], content_type: str | None
    ) -> StoredObject:
        measured = streams.Measured(chunks, max_bytes=None)
        parts = streams.regroup(aiter(measured), self.part_size)
        first = await anext(parts, b"")
        if len(first) < self.part_size:
            await self._put_object(key, first, content_type)
        else:
            parts = streams.prepend(first, parts)
            del first
            await self._upload_parts(key, parts, content_type)
        return StoredObject(key=key, sha256=measured.sha256, size=measured.size)

    async def _put_object(self, key: str, data: bytes, content_type: str | None) -> None:
        s3 = await self._s3()
        with translated(self.bucket):
            await s3.put_object(Bucket=self.bucket, Key=key, Body=data, **_type(content_type))

    async def _upload_parts(
        self, key: str, parts: AsyncIterator[bytes], content_type: str | None
    ) -> None:
        s3 = await self._s3()
        with translated(self.bucket):
            created = await s3.create_multipart_upload(
                Bucket=self.bucket, Key=key, **_type(content_type)
            )
        upload_id = created["UploadId"]
        try:
            done = []
            async for part in parts:
                number = len(done) + 1
                if number > MAX_PARTS:
                    raise TooLarge(max_bytes=MAX_PARTS * self.part_size)
                with translated(self.bucket):
                    sent = await s3.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=part,
                    )
                done.append({"PartNumber": number, "ETag": sent["ETag"]})
                del part  # not held while the next one is gathered
            with translated(self.bucket):
                await s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
                )
        except BaseException:
            # Shielded: a cancelled request (client went away) still drops its parts.
            await asyncio.shield(self._abort_quietly(key, upload_id))
            raise

    async def _copy(self, source: str, target: str, size: int) -> None:
        s3 = await self._s3()
        copy_source = {"Bucket": self.bucket, "Key": source}
        with translated(self.bucket):
            if size <= _MAX_SINGLE_COPY:
                await s3.copy_object(CopySource=copy_source, Bucket=self.bucket, Key=target)
            else:
                await s3.copy(copy_source, self.bucket, target, Config=_LARGE_COPY)

    async def finalize_upload(self, key: str) -> StoredObject:
        keys.check_upload_key(key)
        measured = streams.Measured(self.open_range(key), max_bytes=None)
        async for _ in measured:
            pass
        target = keys.content_key(measured.sha256)
        if not await self.exists(target):
            await self._copy(key, target, measured.size)
        await self.delete(key)
        return StoredObject(key=target, sha256=measured.sha256, size=measured.size)

    # -- reading -----------------------------------------------------------------

    async def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        keys.check_key(key)
        check_range(start, end)
        whole = start == 0 and end is None  # no Range header: an empty object reads fine
        extra = {} if whole else {"Range": f"bytes={start}-{'' if end is None else end}"}
        s3 = await self._s3()
        try:
            with translated(self.bucket):
                response = await s3.get_object(Bucket=self.bucket, Key=key, **extra)
        except ClientError as error:
            if error_code(error) != "InvalidRange":
                raise
            size = await self.size(key)
            raise RangeNotSatisfiable(start=start, end=end, size=size) from error
        body = response["Body"]
        async with body:  # releases the connection even when the reader stops early
            async for chunk in body.iter_chunks(self.chunk_size):
                yield chunk

    async def size(self, key: str) -> int:
        s3 = await self._s3()
        with translated(self.bucket):
            head = await s3.head_object(Bucket=self.bucket, Key=keys.check_key(key))
        return int(head["ContentLength"])

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except NotFound:
            return False
        return True

    @asynccontextmanager
    async def local_path(self, key: str) -> AsyncIterator[Path]:
        keys.check_key(key)
        if self.scratch_dir is not None:
            await asyncio.to_thread(self.scratch_dir.mkdir, parents=True, exist_ok=True)
        folder = Path(
            await asyncio.to_thread(tempfile.mkdtemp, prefix="backline-", dir=self.scratch_dir)
        )
        try:
            path = folder / key.rsplit("/", 1)[-1]
            await streams.write_file(path, self.open_range(key))
            yield path
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)

    async def list_keys(self, prefix: str | None = None) -> AsyncIterator[str]:
        s3 = await self._s3()
        extra = {} if prefix is None else {"Prefix": keys.check_prefix(prefix)}
        paginator = s3.get_paginator("list_objects_v2")
        with translated(self.bucket):
            async for page in paginator.paginate(Bucket=self.bucket, **extra):
                for item in page.get("Contents", []):
                    yield item["Key"]

    # -- deleting ----------------------------------------------------------------

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        with translated(self.bucket):
            await s3.delete_object(Bucket=self.bucket, Key=keys.check_key(key))

    async def delete_prefix(self, prefix: str) -> None:
        prefix = keys.check_prefix(prefix)
        s3 = await self._s3()
        batch: list[dict[str, str]] = []
        async for key in self.list_keys(prefix):
            batch.append({"Key": key})
            if len(batch) == 1000:  # DeleteObjects takes up to 1,000 keys
                await self._delete_batch(s3, batch)
                batch = []
        if batch:
            await self._delete_batch(s3, batch)

    async def _delete_batch(self, s3: Any, batch: list[dict[str, str]]) -> None:
        with translated(self.bucket):
            await s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


def _type(content_type: str | None) -> dict[str, str]:
    return {} if content_type is None else {"ContentType": content_type}
