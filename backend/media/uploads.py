"""Takes uploaded by members: through the API (streamed to storage), or straight from the
browser to S3 in parts (create → presigned part URLs → complete), which survives a broken
connection: the parts already stored are listed and only the rest are sent again.

Either way the bytes must look like audio, may not pass BACKLINE_MAX_UPLOAD_BYTES, and
become a version of a track (the one given, else the one the file's name names) with its
probe queued. A refused upload leaves nothing behind."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import PurePath

from sqlalchemy.ext.asyncio import AsyncSession

from backend.bands.access import BandAccess
from backend.core import validation
from backend.core.errors import BadUserInput, NotFound
from backend.core.settings import Settings
from backend.jobs.queue import QueuedJob
from backend.library import audio
from backend.library import service as library_service
from backend.library.models import Track, TrackVersion
from backend.media import assets, pipeline
from backend.media.models import PendingUpload
from backend.media.storage import Storage, StoredObject, TooLarge
from backend.media.storage.base import MAX_PARTS, MIB, MIN_PART_SIZE

PART_SIZE = 16 * MIB  # 2 GiB in 128 parts; bigger files get bigger parts (S3: 10,000 parts)
PART_URL_LIFETIME = timedelta(hours=6)
_NOT_AUDIO = "This is not an audio file the server can read (wav, flac, mp3, m4a, ogg, opus, ...)."


@dataclass(frozen=True)
class NewTake:
    band_id: int
    filename: str
    track_id: int | None = None
    session_date: date | None = None


@dataclass(frozen=True)
class Uploaded:
    version: TrackVersion
    jobs: list[QueuedJob]  # to send once committed


async def upload(
    *,
    db_session: AsyncSession,
    storage: Storage,
    settings: Settings,
    access: BandAccess,
    take: NewTake,
    chunks: AsyncIterator[bytes],
) -> Uploaded:
    """Store an uploaded file and make it the take ``take`` describes."""
    await _check(db_session=db_session, access=access, take=take)
    head, rest = await _head(chunks, audio.SNIFF_BYTES)
    if not head:
        raise BadUserInput("The file is empty.", field="file", reason="EMPTY")
    fmt = audio.is_audio(take.filename, head)
    if fmt is None:
        raise BadUserInput(_NOT_AUDIO, field="file", reason="NOT_AUDIO")
    stored = await storage.put_stream(_joined(head, rest), max_bytes=settings.max_upload_bytes)
    return await _register(db_session=db_session, access=access, take=take, stored=stored, fmt=fmt)


@dataclass(frozen=True)
class PartUrl:
    part_number: int
    url: str


async def create_direct_upload(
    *,
    db_session: AsyncSession,
    storage: Storage,
    settings: Settings,
    access: BandAccess,
    take: NewTake,
    size_bytes: int,
) -> tuple[PendingUpload, list[PartUrl]]:
    """Start a browser upload in parts; the URLs of every part come back."""
    await _check(db_session=db_session, access=access, take=take)
    if size_bytes <= 0:
        raise BadUserInput("The file is empty.", field="sizeBytes")
    if size_bytes > settings.max_upload_bytes:
        raise TooLarge(max_bytes=settings.max_upload_bytes)
    part_size = max(PART_SIZE, MIN_PART_SIZE, math.ceil(size_bytes / MAX_PARTS))
    # Local storage says here, in its own words, that it cannot take uploads in parts.
    started = await storage.create_multipart(take.filename, content_type=None)
    pending = PendingUpload(
        band_id=take.band_id,
        created_by_id=access.user_id,
        storage_key=started.key,
        upload_id=started.upload_id,
        filename=take.filename,
        size_bytes=size_bytes,
        part_size=part_size,
        track_id=take.track_id,
        session_date=take.session_date,
    )
    db_session.add(pending)
    await db_session.flush()
    numbers = range(1, part_count(pending) + 1)
    return pending, await part_urls(storage=storage, pending=pending, part_numbers=numbers)


def part_count(pending: PendingUpload) -> int:
    return max(1, math.ceil(pending.size_bytes / pending.part_size))


async def part_urls(
    *, storage: Storage, pending: PendingUpload, part_numbers: range | list[int]
) -> list[PartUrl]:
    count = part_count(pending)
    urls = []
    for number in part_numbers:
        if not 1 <= number <= count:
            raise BadUserInput(f"This upload has parts 1 to {count}.", field="partNumbers")
        url = await storage.presign_part(
            pending.storage_key, pending.upload_id, number, expires=PART_URL_LIFETIME
        )
        urls.append(PartUrl(part_number=number, url=url))
    return urls


async def pending_upload(
    *, db_session: AsyncSession, access: BandAccess, upload_id: int
) -> PendingUpload:
    """A direct upload the viewer started (NOT_FOUND for anyone else's)."""
    pending = await access.fetch(
        db_session=db_session, model=PendingUpload, object_id=upload_id, what="upload"
    )
    if pending.created_by_id != access.user_id:
        raise NotFound("upload")
    return pending


async def complete_direct_upload(
    *,
    db_session: AsyncSession,
    storage: Storage,
    settings: Settings,
    access: BandAccess,
    pending: PendingUpload,
) -> Uploaded:
    """Join the stored parts, check the result is audio, and make it a take."""
    await storage.complete_multipart(
        pending.storage_key, pending.upload_id, None, max_bytes=settings.max_upload_bytes
    )
    head = b"".join(
        [chunk async for chunk in storage.open_range(pending.storage_key, 0, audio.SNIFF_BYTES - 1)]
    )
    fmt = audio.is_audio(pending.filename, head)
    if fmt is None:
        await storage.delete(pending.storage_key)
        await db_session.delete(pending)
        raise BadUserInput(_NOT_AUDIO, field="file", reason="NOT_AUDIO")
    stored = await storage.finalize_upload(pending.storage_key)
    take = NewTake(
        band_id=pending.band_id,
        filename=pending.filename,
        track_id=pending.track_id,
        session_date=pending.session_date,
    )
    await db_session.delete(pending)
    return await _register(db_session=db_session, access=access, take=take, stored=stored, fmt=fmt)


async def abort_direct_upload(
    *, db_session: AsyncSession, storage: Storage, pending: PendingUpload
) -> None:
    await storage.abort_multipart(pending.storage_key, pending.upload_id)
    await db_session.delete(pending)


# -- shared ----------------------------------------------------------------------------


async def _check(*, db_session: AsyncSession, access: BandAccess, take: NewTake) -> None:
    access.require_member(take.band_id, what="band")
    validation.text(take.filename, field="file", max_length=500)
    if not PurePath(take.filename).stem.strip():
        raise BadUserInput("The file needs a name.", field="file")
    if take.track_id is not None:
        track = await db_session.get(Track, take.track_id)
        if track is None or track.band_id != take.band_id:
            raise NotFound("track", field="trackId")


async def _register(
    *,
    db_session: AsyncSession,
    access: BandAccess,
    take: NewTake,
    stored: StoredObject,
    fmt: str,
) -> Uploaded:
    asset = await assets.record(db_session=db_session, stored=stored, mime=_mime(fmt))
    name = PurePath(take.filename).name
    if take.track_id is not None:
        track = await db_session.get(Track, take.track_id)
        assert track is not None
    else:
        title = validation.text(PurePath(name).stem, field="file", max_length=200)
        track = await library_service.get_or_create_track(
            db_session=db_session, band_id=take.band_id, title=title
        )
    session = None
    if take.session_date is not None:
        session = await library_service.get_or_create_session(
            db_session=db_session, band_id=take.band_id, session_date=take.session_date
        )
    version = await library_service.add_version(
        db_session=db_session,
        track=track,
        original_filename=name,
        session=session,
        size_bytes=stored.size,
        format=fmt,
    )
    version.asset_id = asset.id
    version.content_hash = stored.sha256
    jobs = await pipeline.queue_probes(
        db_session=db_session,
        takes=[pipeline.TakeToProcess(version_id=version.id, band_id=version.band_id)],
        created_by_id=access.user_id,
        fresh=True,
    )
    await db_session.flush()
    return Uploaded(version=version, jobs=jobs)


async def _head(chunks: AsyncIterator[bytes], size: int) -> tuple[bytes, AsyncIterator[bytes]]:
    """The first ``size`` bytes (fewer if the stream is shorter) and the stream after."""
    head = b""
    iterator = aiter(chunks)
    async for chunk in iterator:
        head += chunk
        if len(head) >= size:
            break
    return head, iterator


async def _joined(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if head:
        yield head
    async for chunk in rest:
        yield chunk


def _mime(fmt: str) -> str:
    return {
        "wav": "audio/wav",
        "aiff": "audio/aiff",
        "flac": "audio/flac",
        "mp3": "audio/mpeg",
        "aac": "audio/aac",
        "m4a": "audio/mp4",
        "ogg": "audio/ogg",
        "opus": "audio/ogg",
        "webm": "audio/webm",
    }.get(fmt, "application/octet-stream")
