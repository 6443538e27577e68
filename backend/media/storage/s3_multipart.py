"""Browser uploads straight to S3, in parts, resumable:

    create_multipart("take.wav")        → MultipartUpload("uploads/<random>/take.wav", upload_id)
    presign_part(key, upload_id, n)     → URL the browser PUTs part n to (≥ 5 MiB but the last)
    list_parts(key, upload_id)          → what arrived: a resumed upload sends the rest
    complete_multipart(key, upload_id)  → the object at ``key``; its size (limit enforced)
    abort_multipart(key, upload_id)     → drops the parts
    finalize_upload(key)                → (a worker) hashes it, moves it to sha256/…

Keys and upload ids come back from a browser, so every key is checked to be an upload's
key (``uploads/…``): a presigned URL can only ever write a part of an upload we started.
The size limit cannot be put into a presigned part URL, so it is enforced when completing,
from the part sizes S3 reports. ``complete_multipart`` without ``parts`` uses S3's own
list, so the browser need not read ETag headers (which CORS hides unless exposed).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from backend.core.errors import BadUserInput, NotFound
from backend.media.storage import keys
from backend.media.storage.base import MAX_PARTS, MultipartUpload, UploadedPart
from backend.media.storage.errors import TooLarge
from backend.media.storage.s3_client import S3Client, translated

log = logging.getLogger(__name__)

# SigV4 presigned URLs live at most 7 days.
_MAX_EXPIRY = timedelta(days=7)


class S3Multipart:
    """The multipart half of ``S3Storage`` (mixed in; it supplies these attributes)."""

    bucket: str
    _presigner: S3Client

    async def _s3(self) -> Any:
        raise NotImplementedError

    async def create_multipart(
        self, key_hint: str, *, content_type: str | None = None
    ) -> MultipartUpload:
        key = keys.upload_key(key_hint)
        extra = {} if content_type is None else {"ContentType": content_type}
        s3 = await self._s3()
        with translated(self.bucket):
            created = await s3.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)
        return MultipartUpload(key=key, upload_id=created["UploadId"])

    async def presign_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        *,
        expires: timedelta = timedelta(hours=1),
    ) -> str:
        keys.check_upload_key(key)
        _check_upload_id(upload_id)
        if not 1 <= part_number <= MAX_PARTS:
            raise BadUserInput(f"Part numbers go from 1 to {MAX_PARTS}.", field="partNumber")
        if not timedelta(seconds=1) <= expires <= _MAX_EXPIRY:
            raise ValueError("presigned URLs expire after 1 second to 7 days")
        presigner = await self._presigner.get()
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": part_number,
        }
        url: str = await presigner.generate_presigned_url(
            "upload_part", Params=params, ExpiresIn=int(expires.total_seconds())
        )
        return url

    async def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        keys.check_upload_key(key)
        _check_upload_id(upload_id)
        s3 = await self._s3()
        parts = []
        paginator = s3.get_paginator("list_parts")
        with translated(self.bucket, missing="upload"):
            async for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
                parts.extend(
                    UploadedPart(
                        part_number=int(part["PartNumber"]),
                        etag=part["ETag"],
                        size=int(part["Size"]),
                    )
                    for part in page.get("Parts", [])
                )
        return sorted(parts, key=lambda part: part.part_number)

    async def complete_multipart(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[UploadedPart] | None = None,
        *,
        max_bytes: int | None,
    ) -> int:
        stored = {part.part_number: part for part in await self.list_parts(key, upload_id)}
        chosen = list(stored.values()) if parts is None else list(parts)
        if not chosen:
            raise BadUserInput("No part of the file has arrived yet.", field="parts")
        missing = [part.part_number for part in chosen if part.part_number not in stored]
        if missing:
            raise BadUserInput(f"Parts {missing[:10]} have not arrived.", field="parts")
        size = sum(stored[part.part_number].size for part in chosen)
        if max_bytes is not None and size > max_bytes:
            await self.abort_multipart(key, upload_id)
            raise TooLarge(max_bytes=max_bytes)
        s3 = await self._s3()
        listed = [{"PartNumber": part.part_number, "ETag": part.etag} for part in chosen]
        with translated(self.bucket, missing="upload"):
            await s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
            )
        return size

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        keys.check_upload_key(key)
        _check_upload_id(upload_id)
        s3 = await self._s3()
        try:
            with translated(self.bucket, missing="upload"):
                await s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except NotFound:
            pass  # gone already: aborting is idempotent

    async def _abort_quietly(self, key: str, upload_id: str) -> None:
        """Best effort, for cleaning up after another error (which is the one raised)."""
        try:
            s3 = await self._s3()
            await s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception:
            log.warning("could not abort multipart upload %s of %s", upload_id, key, exc_info=True)


def _check_upload_id(upload_id: str) -> None:
    if not upload_id or len(upload_id) > 1024 or not upload_id.isprintable():
        raise BadUserInput("That is not an upload id.", field="uploadId")
