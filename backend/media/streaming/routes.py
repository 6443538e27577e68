"""``GET``/``HEAD``/``OPTIONS /media/{key}``: stored objects behind signed links.

Order of work for each request: the signature is checked first (403, storage untouched),
then the object's size is asked (404), then the Range header is read against it (206 or
416), and only then are bytes streamed from ``Storage.open_range`` — one chunk at a time,
never the whole object. HLS playlists are the exception: they are small, read whole and
rewritten so that every segment they name carries a signed link (``playlists.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

from backend.core.errors import NotFound
from backend.core.settings import Settings
from backend.media.signing import MEDIA_PATH, Grant, InvalidSignature, MediaSigner
from backend.media.storage import InvalidKey, RangeNotSatisfiable, StorageUnavailable
from backend.media.streaming import headers, playlists
from backend.media.streaming.ranges import ByteRange, Unsatisfiable, parse_range

# A 3-hour take in 2-second segments is ~0.5 MB of playlist after signing; far more than
# this is not a playlist we wrote.
MAX_PLAYLIST_BYTES = 8 * 1024 * 1024


class MediaSource(Protocol):
    """What the routes read from: a ``Storage``, or anything that reads like one (e.g.
    a reader that also finds scanned originals in their source)."""

    async def size(self, key: str) -> int: ...

    def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]: ...

    async def read_bytes(self, key: str) -> bytes: ...


def app_storage(request: Request) -> MediaSource:
    source: MediaSource = request.app.state.storage
    return source


def create_media_router(
    settings: Settings | None = None,
    *,
    signer: MediaSigner | None = None,
    reader: Callable[[Request], MediaSource] = app_storage,
) -> APIRouter:
    """The media routes, signing with a key derived from ``settings``' secret key. They
    read from what ``reader`` gives for a request (by default ``app.state.storage``)."""
    if signer is None:
        if settings is None:
            raise ValueError("create_media_router needs settings or a signer")
        signer = MediaSigner.from_settings(settings)
    router = APIRouter()
    path = MEDIA_PATH + "/{key:path}"

    @router.api_route(path, methods=["GET", "HEAD"], include_in_schema=False)
    async def media(key: str, request: Request) -> Response:
        return await serve(request, key=key, signer=signer, storage=reader(request))

    @router.options(path, include_in_schema=False)
    async def preflight(key: str) -> Response:
        # No signature needed: a preflight reveals nothing and serves nothing.
        return Response(status_code=204, headers=headers.PREFLIGHT)

    return router


async def serve(
    request: Request, *, key: str, signer: MediaSigner, storage: MediaSource
) -> Response:
    now = datetime.now(UTC)
    try:
        grant = signer.verify(
            key=key, params=parse_qsl(request.url.query, keep_blank_values=True), now=now
        )
    except InvalidSignature as refused:
        message = "This link has expired." if refused.expired else "This link is not valid."
        return _plain(403, message)
    try:
        size = await storage.size(grant.key)
        if grant.key.endswith(".m3u8"):
            return await _playlist(request, grant, size, storage, signer, int(now.timestamp()))
        return await _object(request, grant, size, storage, int(now.timestamp()))
    except (NotFound, InvalidKey):
        return _plain(404, "Not found.")
    except RangeNotSatisfiable as refused:  # the object shrank between size() and the read
        return _unsatisfiable(grant, refused.details.get("size") or 0)
    except StorageUnavailable:
        return _plain(503, "The storage is unavailable; try again shortly.")


async def _object(
    request: Request, grant: Grant, size: int, storage: MediaSource, now: int
) -> Response:
    common = _common_headers(grant, now)
    if headers.none_match(request.headers.get("if-none-match"), headers.etag(grant.key)):
        return Response(status_code=304, headers=common)
    try:
        byte_range = _requested_range(request, grant, size)
    except Unsatisfiable:
        return _unsatisfiable(grant, size)
    status, common = _framing(byte_range, size, common)
    if request.method == "HEAD":
        return Response(status_code=status, headers=common)
    start, end = (0, None) if byte_range is None else (byte_range.start, byte_range.end)
    chunks = storage.open_range(grant.key, start, end)
    # The first chunk is read before any header is sent, so that a key deleted since
    # size() (or a storage error) is still a proper status, not a cut-off body.
    first = await anext(chunks, b"")
    return _StreamedBody(first, chunks, status_code=status, headers=common)


async def _playlist(
    request: Request,
    grant: Grant,
    size: int,
    storage: MediaSource,
    signer: MediaSigner,
    now: int,
) -> Response:
    if size > MAX_PLAYLIST_BYTES:
        return _plain(500, "This playlist is too large to serve.")
    stored = await storage.read_bytes(grant.key)
    # A long take's playlist has thousands of segments to sign (~50 ms): in a thread, so
    # the event loop goes on serving other requests meanwhile.
    body = await asyncio.to_thread(_signed_playlist, stored, grant, signer)
    common = _common_headers(grant, now)
    try:
        byte_range = _requested_range(request, grant, len(body))
    except Unsatisfiable:
        return _unsatisfiable(grant, len(body))
    status, common = _framing(byte_range, len(body), common)
    if byte_range is not None:
        body = body[byte_range.start : byte_range.end + 1]
    if request.method == "HEAD":
        return Response(status_code=status, headers=common)
    return Response(body, status_code=status, headers=common)


def _signed_playlist(stored: bytes, grant: Grant, signer: MediaSigner) -> bytes:
    text = stored.decode("utf-8", "surrogateescape")
    signed = playlists.rewrite(
        text,
        playlist_key=grant.key,
        query_for=lambda key: signer.query(Grant(key=key, expires_at=grant.expires_at)),
    )
    return signed.encode("utf-8", "surrogateescape")


def _requested_range(request: Request, grant: Grant, size: int) -> ByteRange | None:
    header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if header is not None and if_range is not None:
        # Ranges of a representation that changed would be spliced wrongly: only an
        # If-Range naming our (strong) ETag keeps the range; dates cannot be checked.
        tag = headers.etag(grant.key)
        if tag is None or if_range.strip() != tag:
            return None
    return parse_range(header, size)


def _framing(
    byte_range: ByteRange | None, size: int, common: dict[str, str]
) -> tuple[int, dict[str, str]]:
    """The status and headers of a whole (200) or partial (206) answer."""
    if byte_range is None:
        return 200, {**common, "Content-Length": str(size)}
    return (
        206,
        {
            **common,
            "Content-Length": str(byte_range.length),
            "Content-Range": byte_range.content_range(size),
        },
    )


def _common_headers(grant: Grant, now: int) -> dict[str, str]:
    found = {
        **headers.CORS,
        **headers.SECURITY,
        "Accept-Ranges": "bytes",
        "Content-Type": headers.content_type(grant),
        "Cache-Control": headers.cache_control(grant, now),
    }
    tag = headers.etag(grant.key)
    if tag is not None:
        found["ETag"] = tag
    disposition = headers.content_disposition(grant)
    if disposition is not None:
        found["Content-Disposition"] = disposition
    return found


def _unsatisfiable(grant: Grant, size: int) -> Response:
    return _plain(
        416,
        "That byte range is not in this file.",
        {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
    )


def _plain(status: int, message: str, extra: dict[str, str] | None = None) -> Response:
    # CORS headers on errors too: a player on another origin can then see the status.
    return Response(
        f"{message}\n",
        status_code=status,
        media_type="text/plain",
        headers={**headers.CORS, **headers.SECURITY, "Cache-Control": "no-store", **(extra or {})},
    )


class _StreamedBody(StreamingResponse):
    """Streams ``first`` then ``rest``, and closes ``rest`` however the response ends (a
    client that goes away mid-file releases the S3 connection or file at once)."""

    def __init__(
        self,
        first: bytes,
        rest: AsyncIterator[bytes],
        *,
        status_code: int,
        headers: dict[str, str],
    ) -> None:
        super().__init__(_chain(first, rest), status_code=status_code, headers=headers)
        self._rest = rest

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self._rest, "aclose", None)
            if aclose is not None:
                await aclose()


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    del first
    async for chunk in rest:
        yield chunk


__all__ = ["create_media_router", "serve"]
