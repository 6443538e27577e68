"""The storage interface: where uploads and derived files live, on local disk or in S3.

Bytes that arrive as a stream (an upload, a single derived file) are stored under their
sha256 (``sha256/ab/cd/<hex>``): the same bytes are stored once, whoever sends them. A
transcode's several files go under a prefix instead (see ``keys.py`` for why).

One ``Storage`` per event loop, like a database engine: the S3 backend keeps a client that
belongs to the loop that first used it. ``aclose()`` (or ``async with``) releases it.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from backend.media.storage import keys, streams
from backend.media.storage.errors import NotSupported, RangeNotSatisfiable

MIB = 1024 * 1024
# S3's rules for multipart uploads: every part but the last at least 5 MiB, 10,000 parts.
MIN_PART_SIZE = 5 * MIB
MAX_PARTS = 10_000


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class MultipartUpload:
    key: str
    upload_id: str


@dataclass(frozen=True, slots=True)
class UploadedPart:
    part_number: int
    etag: str
    size: int = 0  # known when the storage lists the parts


class Storage(ABC):
    # Whether browsers can upload straight to the storage (create_multipart & co.).
    supports_multipart: ClassVar[bool] = False

    # -- writing -----------------------------------------------------------------

    @abstractmethod
    async def put_stream(
        self, chunks: AsyncIterator[bytes], *, max_bytes: int | None
    ) -> StoredObject:
        """Stores the stream under its content address, never holding all of it in memory.
        More than ``max_bytes`` raises ``TooLarge`` and leaves nothing behind."""

    async def put_bytes(
        self, data: bytes, *, key: str | None = None, content_type: str | None = None
    ) -> StoredObject:
        """Small derived files (waveform JSON): content-addressed, or at ``key``."""
        if key is None:
            return await self.put_stream(streams.one(data), max_bytes=None)
        return await self._put_at(keys.check_writable_key(key), streams.one(data), content_type)

    async def put_file(
        self, path: Path, *, key: str | None = None, content_type: str | None = None
    ) -> StoredObject:
        """A file a worker wrote: content-addressed, or at ``key`` (e.g. an HLS segment
        under ``keys.rendition_prefix(...)``), replacing what was there."""
        if key is None:
            return await self.put_stream(streams.read_file(path), max_bytes=None)
        return await self._put_at(
            keys.check_writable_key(key), streams.read_file(path), content_type
        )

    async def put_directory(
        self, directory: Path, *, prefix: str, content_types: dict[str, str] | None = None
    ) -> list[StoredObject]:
        """Every file below ``directory`` at ``prefix`` + its relative path (a transcode's
        output). ``content_types`` maps suffixes (``.m3u8``) to MIME types."""
        prefix = keys.check_prefix(prefix)
        types = content_types or {}
        stored = []
        for path in await asyncio.to_thread(_files_below, directory):
            key = prefix + path.relative_to(directory).as_posix()
            stored.append(await self.put_file(path, key=key, content_type=types.get(path.suffix)))
        return stored

    @abstractmethod
    async def _put_at(
        self, key: str, chunks: AsyncIterator[bytes], content_type: str | None
    ) -> StoredObject:
        """Writes ``chunks`` at ``key`` (already checked), replacing it."""

    # -- reading -----------------------------------------------------------------

    @abstractmethod
    def open_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes ``start``..``end`` **inclusive**, as in an HTTP Range header
        (``end=None``: to the end of the file; an ``end`` past it is clipped). A start past
        the end raises ``RangeNotSatisfiable``, a missing key ``NotFound`` — when iteration
        begins, so an HTTP handler asks ``size()`` first (it needs it for Content-Range)."""

    async def read_bytes(self, key: str) -> bytes:
        """The whole object, for small files only."""
        return b"".join([chunk async for chunk in self.open_range(key)])

    @abstractmethod
    async def size(self, key: str) -> int:
        """The object's size in bytes; ``NotFound`` when there is none."""

    @abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abstractmethod
    def local_path(self, key: str) -> AbstractAsyncContextManager[Path]:
        """A path on this machine holding the object, for tools like ffmpeg; read-only.
        Valid inside the ``async with`` only (a downloaded copy is removed after)."""

    @abstractmethod
    def list_keys(self, prefix: str | None = None) -> AsyncIterator[str]:
        """Every key (below ``prefix``), for maintenance and tests."""

    # -- deleting ----------------------------------------------------------------

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Removes the object; nothing happens when there is none."""

    @abstractmethod
    async def delete_prefix(self, prefix: str) -> None:
        """Removes everything below ``prefix`` (a folder-like prefix, never everything)."""

    # -- browser multipart uploads (S3 only) ---------------------------------------

    async def create_multipart(
        self, key_hint: str, *, content_type: str | None = None
    ) -> MultipartUpload:
        """Starts an upload at a fresh ``uploads/…`` key named after ``key_hint``."""
        raise self._no_multipart()

    async def presign_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        *,
        expires: timedelta = timedelta(hours=1),
    ) -> str:
        """A URL the browser PUTs part ``part_number`` (1..10,000) to."""
        raise self._no_multipart()

    async def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """The parts the storage has, in order: what a resumed upload can skip."""
        raise self._no_multipart()

    async def complete_multipart(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[UploadedPart] | None = None,
        *,
        max_bytes: int | None,
    ) -> int:
        """Joins the parts (``None``: every part the storage has) into the object at
        ``key``; returns its size. Over ``max_bytes``: aborted, ``TooLarge``."""
        raise self._no_multipart()

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drops the upload and its parts; nothing happens when it is gone already."""
        raise self._no_multipart()

    @abstractmethod
    async def finalize_upload(self, key: str) -> StoredObject:
        """Moves a completed upload (``uploads/…``) to its content address, hashing it on
        the way (a worker's job: it reads the whole object)."""

    def _no_multipart(self) -> NotSupported:
        return NotSupported(
            "Direct uploads in parts need S3 storage (BACKLINE_STORAGE_BACKEND=s3); "
            "upload the file through the API instead."
        )

    # -- lifecycle ---------------------------------------------------------------

    async def aclose(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Releases connections; the storage can be used again afterwards."""

    async def __aenter__(self) -> Storage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def check_range(start: int, end: int | None) -> None:
    """Refuses ranges no object can satisfy (negative start, end before start)."""
    if start < 0 or (end is not None and end < start):
        raise RangeNotSatisfiable(start=start, end=end, size=None)


def range_stop(start: int, end: int | None, size: int) -> int:
    """The exclusive stop offset of ``start``..``end`` (inclusive) in ``size`` bytes."""
    check_range(start, end)
    if start == 0 and end is None:
        return size  # the whole object, even an empty one
    if start >= size:
        raise RangeNotSatisfiable(start=start, end=end, size=size)
    return size if end is None else min(end + 1, size)


def _files_below(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())
