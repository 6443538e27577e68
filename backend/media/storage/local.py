"""Storage in a folder on local disk: the embedded default.

A stream is written to ``tmp/<random>`` below the root while it is hashed, synced, then
renamed to its content address (a rename within one filesystem: atomic, so a reader never
sees half a file). When that address exists already, the temporary file is removed.

Direct multipart uploads from browsers are not offered here (``supports_multipart`` is
False): the browser talks to the API process, which *is* the storage in the embedded
setup, so uploads go through the API's own streaming upload. Offering presigned part URLs
would mean an HTTP route of the API signing and receiving parts, i.e. a second upload
protocol in the API layer; that is left out until someone needs resumable uploads without
S3 (MinIO is one container).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from backend.core.errors import NotFound
from backend.media.storage import keys, streams
from backend.media.storage.base import Storage, StoredObject, range_stop
from backend.media.storage.errors import InvalidKey


class LocalStorage(Storage):
    def __init__(self, root: Path, *, chunk_size: int = streams.READ_CHUNK) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.chunk_size = chunk_size

    def _path(self, key: str) -> Path:
        path = self.root / keys.check_key(key)
        # The key is plain segments; this also catches a symlink inside the folder.
        if not path.resolve().is_relative_to(self.root):
            raise InvalidKey(key, "it leads outside the storage folder")
        return path

    # -- writing -----------------------------------------------------------------

    async def put_stream(
        self, chunks: AsyncIterator[bytes], *, max_bytes: int | None
    ) -> StoredObject:
        measured = streams.Measured(chunks, max_bytes=max_bytes)
        temp = await self._write_temp(aiter(measured))
        key = keys.content_key(measured.sha256)
        await asyncio.to_thread(_move_unless_present, temp, self._path(key))
        return StoredObject(key=key, sha256=measured.sha256, size=measured.size)

    async def _put_at(
        self, key: str, chunks: AsyncIterator[bytes], content_type: str | None
    ) -> StoredObject:
        measured = streams.Measured(chunks, max_bytes=None)
        temp = await self._write_temp(aiter(measured))
        target = self._path(key)
        try:
            await asyncio.to_thread(_replace, temp, target)
        finally:
            temp.unlink(missing_ok=True)
        return StoredObject(key=key, sha256=measured.sha256, size=measured.size)

    async def _write_temp(self, chunks: AsyncIterator[bytes]) -> Path:
        temp = self._path(keys.temp_key())
        await asyncio.to_thread(temp.parent.mkdir, parents=True, exist_ok=True)
        try:
            await streams.write_file(temp, chunks)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp

    async def finalize_upload(self, key: str) -> StoredObject:
        source = self._path(keys.check_upload_key(key))
        if not source.is_file():
            raise NotFound("upload")
        measured = streams.Measured(streams.read_file(source), max_bytes=None)
        async for _ in measured:
            pass
        target_key = keys.content_key(measured.sha256)
        await asyncio.to_thread(_move_unless_present, source, self._path(target_key))
        return StoredObject(key=target_key, sha256=measured.sha256, size=measured.size)

    # -- reading -----------------------------------------------------------------

    async def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            file = await asyncio.to_thread(open, path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound("stored file") from None
        with file:
            stop = range_stop(start, end, os.fstat(file.fileno()).st_size)
            file.seek(start)
            remaining = stop - start
            while remaining > 0:
                chunk = await asyncio.to_thread(file.read, min(self.chunk_size, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    async def size(self, key: str) -> int:
        path = self._path(key)
        try:
            stat = await asyncio.to_thread(path.stat)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound("stored file") from None
        if not path.is_file():
            raise NotFound("stored file")
        return stat.st_size

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    @asynccontextmanager
    async def local_path(self, key: str) -> AsyncIterator[Path]:
        path = self._path(key)
        if not await asyncio.to_thread(path.is_file):
            raise NotFound("stored file")
        yield path

    async def list_keys(self, prefix: str | None = None) -> AsyncIterator[str]:
        top = self.root if prefix is None else self._path(keys.check_prefix(prefix).rstrip("/"))
        for key in await asyncio.to_thread(self._walk, top):
            yield key

    def _walk(self, top: Path) -> list[str]:
        found = []
        for folder, _dirs, files in os.walk(top):
            for name in files:
                found.append(Path(folder, name).relative_to(self.root).as_posix())
        return sorted(found)

    # -- deleting ----------------------------------------------------------------

    async def delete(self, key: str) -> None:
        path = self._path(key)
        if await asyncio.to_thread(path.is_file):
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def delete_prefix(self, prefix: str) -> None:
        folder = self._path(keys.check_prefix(prefix).rstrip("/"))
        if await asyncio.to_thread(folder.is_dir):
            await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)


def _move_unless_present(source: Path, target: Path) -> None:
    """Content addressing: the first copy of some bytes stays, later ones are dropped."""
    if target.is_file():
        source.unlink(missing_ok=True)
        return
    try:
        _replace(source, target)
    finally:
        source.unlink(missing_ok=True)


def _replace(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
