"""Byte-stream plumbing shared by the backends: hash and count while passing chunks on,
regroup chunks into parts, read and write files without blocking the event loop.
Nothing here holds more than one buffer (or one part) of a stream in memory."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from backend.media.storage.errors import TooLarge

READ_CHUNK = 256 * 1024
WRITE_BUFFER = 1024 * 1024


class Measured:
    """Passes ``chunks`` through once, hashing (sha256) and counting them, and raises
    ``TooLarge`` as soon as more than ``max_bytes`` went by (the rest is never read)."""

    def __init__(self, chunks: AsyncIterator[bytes], *, max_bytes: int | None) -> None:
        self._chunks = chunks
        self._max_bytes = max_bytes
        self._hash = hashlib.sha256()
        self.size = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            if not chunk:
                continue
            self.size += len(chunk)
            if self._max_bytes is not None and self.size > self._max_bytes:
                raise TooLarge(max_bytes=self._max_bytes)
            self._hash.update(chunk)
            yield bytes(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


async def regroup(chunks: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """Joins chunks into pieces of at least ``size`` bytes; only the last may be shorter
    (and is left out when empty). No piece is referenced here once it is passed on."""
    pending: list[bytes] = []
    pending_size = 0
    async for chunk in chunks:
        pending.append(chunk)
        pending_size += len(chunk)
        if pending_size >= size:
            piece = _take(pending)
            pending_size = 0
            yield piece
            del piece
    if pending:
        yield _take(pending)


def _take(pending: list[bytes]) -> bytes:
    piece = b"".join(pending)
    pending.clear()
    return piece


async def prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    held = [first]
    del first
    yield held.pop()
    async for chunk in rest:
        yield chunk
        del chunk


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def read_file(path: Path, *, chunk_size: int = WRITE_BUFFER) -> AsyncIterator[bytes]:
    """The file's bytes in chunks, read in a worker thread."""
    file = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(file.read, chunk_size):
            yield chunk
    finally:
        file.close()


async def write_file(path: Path, chunks: AsyncIterator[bytes]) -> None:
    """Writes ``chunks`` to a new file (never an existing one) and syncs it to disk.
    The caller removes the file if this raises."""
    file = await asyncio.to_thread(open, path, "xb")
    try:
        buffer = bytearray()
        async for chunk in chunks:
            buffer += chunk
            if len(buffer) >= WRITE_BUFFER:
                await asyncio.to_thread(file.write, buffer)
                buffer = bytearray()  # the old one belongs to the thread until it is done
        if buffer:
            await asyncio.to_thread(file.write, buffer)
        await asyncio.to_thread(_sync, file)
    finally:
        file.close()


def _sync(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())
