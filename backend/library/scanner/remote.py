"""A WebDAV share: walked with PROPFIND Depth 1, one level at a time, skipping every folder
whose etag is what it was at the last scan (Nextcloud changes a folder's etag whenever
anything below it changes); new and changed files are read in byte ranges."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

from backend.library import paths
from backend.library.scanner.found import FoundFile, SourceUnreachable, Walk, WalkError
from backend.library.scanner.inspect import Inspected, NotAudio, inspect_handle
from backend.library.webdav import (
    DavEntry,
    WebDavAuthError,
    WebDavClient,
    WebDavError,
    WebDavNotFound,
    WebDavUnavailable,
)

LISTING_CONCURRENCY = 4
INSPECT_CONCURRENCY = 8
# A small file comes in one request; a big one as its head and tail (what sniffing,
# fingerprinting and most tag formats need), anything else in blocks as mutagen asks.
WHOLE_FILE_BELOW = 256 * 1024
HEAD_BYTES = 128 * 1024
TAIL_BYTES = 64 * 1024
BLOCK_BYTES = 64 * 1024
# Tags live near the ends; a file that wants more than this read is left to the probe.
MAX_BYTES_PER_FILE = 4 * 1024 * 1024


class WebDavReader:
    def __init__(self, client: WebDavClient) -> None:
        self.client = client

    async def walk(self, known_folders: dict[str, str]) -> Walk:
        result = Walk()
        try:
            root, children = await self.client.listing("")
        except WebDavError as error:
            raise _unreachable(error, listing=True) from error
        marker = _folder_marker(root)
        if marker is not None:
            result.folder_markers[""] = marker
            if known_folders.get("") == marker:
                result.unchanged_folders.add("")
                return result
        limit = asyncio.Semaphore(LISTING_CONCURRENCY)
        level = self._take(children, known_folders, result)
        while level:
            listings = await asyncio.gather(*(self._list(path, limit, result) for path in level))
            level = [
                folder
                for children in listings
                for folder in self._take(children, known_folders, result)
            ]
        result.files.sort(key=lambda file: file.path)
        return result

    async def _list(self, path: str, limit: asyncio.Semaphore, result: Walk) -> list[DavEntry]:
        async with limit:
            try:
                _, children = await self.client.listing(path)
            except WebDavUnavailable as error:
                raise _unreachable(error) from error
            except WebDavError as error:  # this folder only; the walk goes on
                result.errors.append(WalkError(path, error.message))
                return []
        return children

    def _take(
        self, children: list[DavEntry], known_folders: dict[str, str], result: Walk
    ) -> list[str]:
        """Note the files among children; return the folders still to list."""
        to_list = []
        for entry in children:
            if paths.is_hidden(entry.path):
                continue
            if entry.is_collection:
                marker = _folder_marker(entry)
                if marker is not None:
                    result.folder_markers[entry.path] = marker
                    if known_folders.get(entry.path) == marker:
                        result.unchanged_folders.add(entry.path)
                        continue
                to_list.append(entry.path)
            else:
                size = entry.size or 0
                modified = entry.last_modified.isoformat() if entry.last_modified else ""
                result.files.append(FoundFile(entry.path, size, entry.etag or f"{size}:{modified}"))
        return to_list

    async def inspect(self, files: list[FoundFile]) -> list[Inspected | Exception]:
        limit = asyncio.Semaphore(INSPECT_CONCURRENCY)
        return list(await asyncio.gather(*(self._inspect(file, limit) for file in files)))

    async def _inspect(self, file: FoundFile, limit: asyncio.Semaphore) -> Inspected | Exception:
        loop = asyncio.get_running_loop()
        async with limit:
            try:
                remote = RemoteFile(file.size, self._fetcher(file.path, loop))
                if file.size <= WHOLE_FILE_BELOW:
                    remote.keep(0, await self.client.read_range(file.path, 0, file.size))
                else:
                    head, tail = await asyncio.gather(
                        self.client.read_range(file.path, 0, HEAD_BYTES),
                        self.client.read_range(file.path, file.size - TAIL_BYTES, TAIL_BYTES),
                    )
                    remote.keep(0, head)
                    remote.keep(file.size - TAIL_BYTES, tail)
                # Parsing tags may ask for more ranges; those are fetched on this loop.
                return await asyncio.to_thread(inspect_handle, file.path, remote, file.size)
            except NotAudio as error:
                return error
            except WebDavUnavailable as error:
                raise _unreachable(error) from error
            except WebDavNotFound:
                return FileNotFoundError("It disappeared during the scan.")
            except WebDavAuthError:
                return PermissionError("Permission denied.")
            except WebDavError as error:
                return OSError(error.message)

    def _fetcher(self, path: str, loop: asyncio.AbstractEventLoop) -> Callable[[int, int], bytes]:
        def fetch(start: int, length: int) -> bytes:
            future = asyncio.run_coroutine_threadsafe(
                self.client.read_range(path, start, length), loop
            )
            return future.result(timeout=60)

        return fetch


class RemoteFile(io.RawIOBase):
    """A read-only, seekable view of a remote file: served from the ranges already read,
    fetching (in blocks, up to a budget) what is not. Used from a worker thread."""

    def __init__(self, size: int, fetch: Callable[[int, int], bytes]) -> None:
        super().__init__()
        self.size = size
        self._fetch = fetch
        self._ranges: list[tuple[int, bytes]] = []
        self._position = 0
        self._fetched = 0

    def keep(self, start: int, data: bytes) -> None:
        self._ranges.append((start, data))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self.size - self._position)
        if wanted <= 0:
            return 0
        data = self._cached(self._position, wanted)
        if data is None:
            if self._fetched + wanted > MAX_BYTES_PER_FILE:
                raise OSError("Reading the tags would download too much of the file.")
            length = max(wanted, BLOCK_BYTES)
            block = self._fetch(self._position, length)
            self._fetched += len(block)
            self.keep(self._position, block)
            data = block[:wanted]
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def _cached(self, start: int, length: int) -> bytes | None:
        for begin, data in self._ranges:
            if begin <= start and start + length <= begin + len(data):
                return data[start - begin : start - begin + length]
        return None


def _folder_marker(entry: DavEntry | None) -> str | None:
    # Servers without collection etags (wsgidav, Apache) get every folder listed.
    return entry.etag if entry is not None and entry.is_collection else None


def _unreachable(error: WebDavError, *, listing: bool = False) -> SourceUnreachable:
    if isinstance(error, WebDavAuthError):
        return SourceUnreachable(
            "The WebDAV server refused the username or password (or may not share this folder)."
        )
    if isinstance(error, WebDavNotFound) and listing:
        return SourceUnreachable("The share's folder is not there (any more); check its address.")
    if isinstance(error, WebDavUnavailable):
        return SourceUnreachable(f"{error.message} The scan stopped; what was indexed stays.")
    return SourceUnreachable(error.message)
