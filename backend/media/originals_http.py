"""What the media routes read: storage, plus the originals of scanned takes, which stay
in their source (a band's folder is not copied into storage) and are read in place.

A scanned take's original has the key ``originals/<version id>``; a signed link to it
is as good as one to a stored object. Reading it finds the version's file anew each
time: a local file by path (never outside the source's root), a WebDAV file in ranged
GETs of ``_WEBDAV_PIECE`` bytes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.crypto import UndecryptableSecret
from backend.core.errors import NotFound
from backend.core.settings import Settings
from backend.library import sources
from backend.library.models import Source, SourceKind, TrackVersion, VersionStatus
from backend.library.webdav import WebDavClient, WebDavError
from backend.media.originals import local_file
from backend.media.storage import RangeNotSatisfiable, Storage
from backend.media.storage.base import range_stop

PREFIX = "originals/"
_LOCAL_PIECE = 1 << 16
_WEBDAV_PIECE = 1 << 20
T = TypeVar("T")


def original_key(version_id: int) -> str:
    return f"{PREFIX}{int(version_id)}"


class MediaReader:
    """``size``, ``open_range`` and ``read_bytes`` as ``Storage`` has them, for both."""

    def __init__(
        self,
        storage: Storage,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        settings: Settings,
    ) -> None:
        self.storage = storage
        self._session_factory = session_factory
        self._settings = settings

    async def size(self, key: str) -> int:
        if not key.startswith(PREFIX):
            return await self.storage.size(key)
        return await self._size_at(await self._locate(key))

    async def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        if not key.startswith(PREFIX):
            async for chunk in self.storage.open_range(key, start, end):
                yield chunk
            return
        where = await self._locate(key)  # once: the version's row is read once a request
        stop = range_stop(start, end, await self._size_at(where))
        if isinstance(where, Path):
            async for chunk in _read_local(where, start, stop):
                yield chunk
            return
        source, path = where
        async with self._client(source) as client:
            position = start
            while position < stop:
                length = min(_WEBDAV_PIECE, stop - position)
                piece = await _webdav(client.read_range(path, position, length))
                if not piece:
                    raise RangeNotSatisfiable(start=position, end=end, size=position)
                position += len(piece)
                yield piece

    async def _size_at(self, where: Path | tuple[Source, str]) -> int:
        if isinstance(where, Path):
            return (await asyncio.to_thread(os.stat, where)).st_size
        source, path = where
        async with self._client(source) as client:
            entry = await _webdav(client.stat(path))
        if entry.size is None:
            raise NotFound("stored file")
        return entry.size

    async def read_bytes(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.open_range(key)])

    async def _locate(self, key: str) -> Path | tuple[Source, str]:
        """A local path, or (share, path in the share); NotFound when there is none."""
        try:
            version_id = int(key[len(PREFIX) :])
        except ValueError:
            raise NotFound("stored file") from None
        async with self._session_factory() as db:
            version = await db.get(TrackVersion, version_id)
            source = (
                await db.get(Source, version.source_id) if version and version.source_id else None
            )
        if (
            version is None
            or source is None
            or source.removed_at is not None
            or version.path is None
            or version.status == VersionStatus.MISSING
        ):
            raise NotFound("stored file")
        if source.kind == SourceKind.WEBDAV:
            return source, version.path
        path = await asyncio.to_thread(local_file, Path(source.root), version.path)
        if path is None:
            raise NotFound("stored file")
        return path

    def _client(self, source: Source) -> WebDavClient:
        try:
            return sources.webdav_client(source, settings=self._settings)
        except UndecryptableSecret:  # its password must be set again; nothing to serve
            raise NotFound("stored file") from None


async def _webdav(call: Awaitable[T]) -> T:
    """A share's failure to answer is, for a player, a file that is not there."""
    try:
        return await call
    except WebDavError as error:
        raise NotFound("stored file") from error


async def _read_local(path: Path, start: int, stop: int) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(open, path, "rb")
    try:
        await asyncio.to_thread(handle.seek, start)
        position = start
        while position < stop:
            piece = await asyncio.to_thread(handle.read, min(_LOCAL_PIECE, stop - position))
            if not piece:
                break
            position += len(piece)
            yield piece
    finally:
        await asyncio.to_thread(handle.close)
