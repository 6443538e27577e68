"""A scan of one source, as named phases that each report progress:

walk (list files, no opening) → diff (against the index, in memory) → register (open new
and changed files, write in batches) → mark missing (what the walk did not find)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.database import utcnow
from backend.core.settings import Settings
from backend.jobs import service as jobs_service
from backend.jobs.heartbeat import heartbeat
from backend.jobs.models import Job, JobStatus
from backend.library import paths
from backend.library import service as library_service
from backend.library.models import Source, SourceFolder, TrackVersion, VersionStatus
from backend.library.scanner.found import (
    FoundFile,
    SourceReader,
    SourceUnreachable,
    Walk,
    below_any,
)
from backend.library.scanner.inspect import Inspected, NotAudio, worth_opening
from backend.library.scanner.readers import open_reader
from backend.library.titles import normalize_title

logger = logging.getLogger("backline.scan")

BATCH = 100
PROGRESS_INTERVAL = 0.1  # at most ~10 progress events a second per job
CANCEL_CHECK_INTERVAL = 0.25

Publish = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class ScanContext:
    session_factory: async_sessionmaker[AsyncSession]
    settings: Settings
    publish: Publish


@dataclass
class Indexed:
    version_id: int
    marker: str | None
    status: VersionStatus
    content_hash: str | None


@dataclass
class _Run:
    ctx: ScanContext
    job: Job
    source: Source
    reader: SourceReader
    added_ids: list[int] = field(default_factory=list)
    updated_ids: list[int] = field(default_factory=list)
    sessions: dict[date, int] = field(default_factory=dict)
    tracks: dict[str, Any] = field(default_factory=dict)
    # Tracks given a take in the current batch; their last_recorded_at is refreshed once.
    touched_tracks: set[int] = field(default_factory=set)
    # Paths that failed; the folders above them are listed again next time.
    failed_paths: list[str] = field(default_factory=list)
    last_progress: float = 0.0
    last_cancel_check: float = 0.0


async def run_scan(ctx: ScanContext, job_id: int) -> None:
    """Run the scan job; a second delivery of the same job is harmless."""
    async with ctx.session_factory() as db:
        job = await jobs_service.start(db_session=db, job_id=job_id)
        await db.commit()
        if job is None:
            return
        source = await db.get(Source, job.source_id)
    await _publish_job(ctx, job)
    if source is None or source.removed_at is not None:
        await _end(ctx, job, JobStatus.FAILED, "The source was removed.")
        return
    async with heartbeat(ctx.session_factory, job.id):
        try:
            async with open_reader(source, ctx.settings) as reader:
                cancelled = await _scan(_Run(ctx=ctx, job=job, source=source, reader=reader))
        except SourceUnreachable as error:
            await _end(ctx, job, JobStatus.FAILED, error.message)
            return
        summary = (
            f"{job.added} added, {job.updated} updated, {job.skipped} skipped, {job.failed} failed."
        )
        if cancelled:
            await _missing_if_removed(ctx, source.id)
            message = f"Cancelled; what was indexed stays. {summary}"
            await _end(ctx, job, JobStatus.CANCELLED, message)
        else:
            await _end(ctx, job, JobStatus.SUCCEEDED, summary)


async def _scan(run: _Run) -> bool:
    """The phases; True when cancelled."""
    job = run.job
    # Phase 1: walk.
    known_folders = await load_folder_markers(run.ctx.session_factory, run.source.id)
    walk = await run.reader.walk(known_folders)
    failed_dirs = {error.path for error in walk.errors}
    for error in walk.errors:
        jobs_service.record_error(job, path=error.path, message=error.message)
        run.failed_paths.append(error.path)

    # Phase 2: diff against the index.
    index = await load_index(run.ctx.session_factory, run.source.id)
    seen: set[str] = set()
    todo: list[FoundFile] = []
    returning: list[int] = []
    if walk.unchanged_folders:
        # Not listed, as nothing changed below them: their files are as indexed.
        for path, known in index.items():
            if below_any(path, walk.unchanged_folders):
                seen.add(path)
                if known.status != VersionStatus.MISSING:
                    job.processed += 1
    job.total = len(walk.files) + job.processed
    for file in walk.files:
        seen.add(file.path)
        known = index.get(file.path)
        if known is None:
            if worth_opening(file.path):
                todo.append(file)
            else:
                job.skipped += 1
                job.processed += 1
        elif known.marker != file.marker:
            todo.append(file)
        else:
            if known.status == VersionStatus.MISSING:
                returning.append(known.version_id)
            job.processed += 1
    # Files that were indexed and are gone: candidates for moves, else MISSING.
    gone = {
        path: known
        for path, known in index.items()
        if path not in seen and not below_any(path, failed_dirs)
    }
    await _progress(run, force=True)

    # Phase 3: register new and changed files, in batches.
    moved_from: dict[str, list[str]] = {}
    for path, known in gone.items():
        if known.content_hash:
            moved_from.setdefault(known.content_hash, []).append(path)
    batches = [todo[start : start + BATCH] for start in range(0, len(todo), BATCH)]
    # The next batch is read (a thread, or ranged GETs) while this one is written.
    reading = _read_ahead(run, batches, 0)
    try:
        for number, batch in enumerate(batches):
            if await _cancel_requested(run):
                return True
            assert reading is not None
            inspected = await reading
            reading = _read_ahead(run, batches, number + 1)
            await _write_batch(run, batch, inspected, index, gone, moved_from)
            await _publish_versions(run)
            await _progress(run)
    finally:
        if reading is not None:
            reading.cancel()

    if await _cancel_requested(run, now=True):
        return True
    # Phase 4: what is gone is MISSING (comments and reactions stay on it); what came
    # back is restored.
    async with run.ctx.session_factory() as db:
        if gone:
            await db.execute(
                update(TrackVersion)
                .where(TrackVersion.id.in_([known.version_id for known in gone.values()]))
                .values(status=VersionStatus.MISSING)
            )
        if returning:
            await db.execute(
                update(TrackVersion)
                .where(TrackVersion.id.in_(returning))
                .values(status=VersionStatus.PENDING)
            )
            job.updated += len(returning)
            run.updated_ids += returning
        db.add(job)
        await _save_folder_markers(db, run, walk, known_folders)
        await db.commit()
    await _publish_versions(run)
    return False


def _read_ahead(
    run: _Run, batches: list[list[FoundFile]], number: int
) -> asyncio.Task[list[Inspected | Exception]] | None:
    if number >= len(batches):
        return None
    return asyncio.create_task(run.reader.inspect(batches[number]))


async def _write_batch(
    run: _Run,
    batch: list[FoundFile],
    inspected: list[Inspected | Exception],
    index: dict[str, Indexed],
    gone: dict[str, Indexed],
    moved_from: dict[str, list[str]],
) -> None:
    async with run.ctx.session_factory() as db:
        # Numbers of new takes are read under the band's lock, afresh each batch:
        # another scan of the band may have added takes meanwhile.
        await library_service.lock_numbering(db_session=db, band_id=run.source.band_id)
        await _resolve_places(db, run, batch, inspected, index, moved_from)
        new_takes = []
        for file, result in zip(batch, inspected, strict=True):
            take = await _register(run, db, file, result, index, gone, moved_from)
            if take is not None:
                new_takes.append(take)
            run.job.processed += 1
        await _insert_new_takes(db, run, new_takes)
        await _flush_recorded(db, run)
        db.add(run.job)
        await db.commit()


async def _missing_if_removed(ctx: ScanContext, source_id: int) -> None:
    """The source was removed while a batch was being written: that batch is MISSING too."""
    async with ctx.session_factory() as db:
        removed = await db.scalar(select(Source.removed_at).where(Source.id == source_id))
        if removed is not None:
            await db.execute(
                update(TrackVersion)
                .where(TrackVersion.source_id == source_id)
                .values(status=VersionStatus.MISSING)
            )
            await db.commit()


async def load_folder_markers(
    session_factory: async_sessionmaker[AsyncSession], source_id: int
) -> dict[str, str]:
    async with session_factory() as db:
        rows = await db.execute(
            select(SourceFolder.path, SourceFolder.etag).where(SourceFolder.source_id == source_id)
        )
        return {path: marker for path, marker in rows}


async def _save_folder_markers(
    db: AsyncSession, run: _Run, walk: Walk, known: dict[str, str]
) -> None:
    """Remember each folder's marker for the next scan, except above a file or folder that
    failed: those folders must be listed again."""
    failed_above: set[str] = {""}
    for path in run.failed_paths:
        head = path
        while "/" in head:
            head = head.rpartition("/")[0]
            failed_above.add(head)
        failed_above.add(path)
    markers = {
        path: marker
        for path, marker in walk.folder_markers.items()
        if not run.failed_paths or path not in failed_above
    }
    # Below a folder that was not listed, what was known still holds.
    for path, marker in known.items():
        if below_any(path, walk.unchanged_folders) and path not in walk.unchanged_folders:
            markers.setdefault(path, marker)
    if markers == known:
        return
    await db.execute(delete(SourceFolder).where(SourceFolder.source_id == run.source.id))
    if markers:
        await db.execute(
            insert(SourceFolder),
            [
                {"source_id": run.source.id, "path": path, "etag": marker}
                for path, marker in markers.items()
            ],
        )


async def _register(
    run: _Run,
    db: AsyncSession,
    file: FoundFile,
    result: Inspected | Exception,
    index: dict[str, Indexed],
    gone: dict[str, Indexed],
    moved_from: dict[str, list[str]],
) -> _NewTake | None:
    """Record what a file turned out to be; a new take is returned, to be inserted with
    the rest of its batch."""
    job = run.job
    if isinstance(result, NotAudio):
        job.skipped += 1
        return
    if isinstance(result, OSError):
        message = (
            "Permission denied."
            if isinstance(result, PermissionError)
            else (
                "It disappeared during the scan."
                if isinstance(result, FileNotFoundError)
                else f"Could not be read: {result.strerror or result}."
            )
        )
        jobs_service.record_error(job, path=file.path, message=message)
        run.failed_paths.append(file.path)
        return
    known = index.get(file.path)
    if known is None and moved_from.get(result.content_hash):
        # The same bytes left another path in this source: a move or rename. The take
        # keeps its version, comments and reactions. Among identical copies, the one
        # from the same folder is the likelier.
        candidates = moved_from[result.content_hash]
        folder = file.path.rpartition("/")[0]
        old_path = next((p for p in candidates if p.rpartition("/")[0] == folder), candidates[0])
        candidates.remove(old_path)
        known = gone.pop(old_path)
    if known is not None:
        await db.execute(
            update(TrackVersion)
            .where(TrackVersion.id == known.version_id)
            .values(
                path=file.path,
                change_marker=file.marker,
                content_hash=result.content_hash,
                size_bytes=file.size,
                format=result.format,
                status=VersionStatus.PENDING,
            )
        )
        job.updated += 1
        run.updated_ids.append(known.version_id)
        return
    place = paths.place_recording(file.path)
    identity = normalize_title(place.track_title)
    track = run.tracks.get(identity)
    if track is None:
        track = await library_service.get_or_create_track(
            db_session=db, band_id=run.source.band_id, title=place.track_title
        )
        run.tracks[identity] = track
    session_id = None
    if place.session_date is not None:
        session_id = run.sessions.get(place.session_date)
        if session_id is None:
            session = await library_service.get_or_create_session(
                db_session=db, band_id=run.source.band_id, session_date=place.session_date
            )
            session_id = run.sessions[place.session_date] = session.id
    tags = result.tags
    return _NewTake(
        track_id=track.id,
        row={
            "band_id": run.source.band_id,
            "track_id": track.id,
            "session_id": session_id,
            "source_id": run.source.id,
            "path": file.path,
            "original_filename": Path(file.path).name,
            "label": place.label,
            "change_marker": file.marker,
            "content_hash": result.content_hash,
            "format": result.format,
            "size_bytes": file.size,
            "duration_ms": tags.duration_ms,
            "sample_rate": tags.sample_rate,
            "channels": tags.channels,
            "bitrate": tags.bitrate,
            "recorded_at": tags.recorded_at,
            "status": VersionStatus.PENDING,
        },
    )


async def _resolve_places(
    db: AsyncSession,
    run: _Run,
    batch: list[FoundFile],
    inspected: list[Inspected | Exception],
    index: dict[str, Indexed],
    moved_from: dict[str, list[str]],
) -> None:
    """Find or make, all at once, the tracks and sessions the batch's new takes go to
    (a take that turns out otherwise in _register just leaves its entry unused)."""
    titles: list[str] = []
    dates: list[date] = []
    for file, result in zip(batch, inspected, strict=True):
        if not isinstance(result, Inspected) or file.path in index:
            continue
        if moved_from.get(result.content_hash):
            continue  # likely a move: it keeps its track
        place = paths.place_recording(file.path)
        if normalize_title(place.track_title) not in run.tracks:
            titles.append(place.track_title)
        if place.session_date is not None and place.session_date not in run.sessions:
            dates.append(place.session_date)
    band_id = run.source.band_id
    if titles:
        run.tracks.update(
            await library_service.get_or_create_tracks(
                db_session=db, band_id=band_id, titles=titles
            )
        )
    if dates:
        run.sessions.update(
            await library_service.get_or_create_sessions(
                db_session=db, band_id=band_id, dates=dates
            )
        )


@dataclass
class _NewTake:
    track_id: int
    row: dict[str, Any]


async def _insert_new_takes(db: AsyncSession, run: _Run, takes: list[_NewTake]) -> None:
    """One statement for the batch's new takes, numbered after each track's newest (read
    under the band's lock, in one grouped query)."""
    if not takes:
        return
    track_ids = sorted({take.track_id for take in takes})
    highest = await db.execute(
        select(TrackVersion.track_id, func.max(TrackVersion.number))
        .where(TrackVersion.track_id.in_(track_ids))
        .group_by(TrackVersion.track_id)
    )
    next_number = {track_id: 1 for track_id in track_ids}
    next_number.update({track_id: (top or 0) + 1 for track_id, top in highest})
    now = utcnow()
    rows = []
    for take in takes:
        rows.append({**take.row, "number": next_number[take.track_id], "created_at": now})
        next_number[take.track_id] += 1
    inserted = await db.execute(insert(TrackVersion).returning(TrackVersion.id), rows)
    run.added_ids.extend(inserted.scalars().all())
    run.touched_tracks.update(track_ids)
    run.job.added += len(takes)


async def _flush_recorded(db: AsyncSession, run: _Run) -> None:
    if run.touched_tracks:
        await library_service.touch_recorded(db_session=db, track_ids=sorted(run.touched_tracks))
        run.touched_tracks.clear()


async def load_index(
    session_factory: async_sessionmaker[AsyncSession], source_id: int
) -> dict[str, Indexed]:
    async with session_factory() as db:
        rows = await db.execute(
            select(
                TrackVersion.path,
                TrackVersion.id,
                TrackVersion.change_marker,
                TrackVersion.status,
                TrackVersion.content_hash,
            ).where(TrackVersion.source_id == source_id)
        )
        return {
            path: Indexed(vid, marker, status, digest) for path, vid, marker, status, digest in rows
        }


async def _cancel_requested(run: _Run, *, now: bool = False) -> bool:
    moment = time.monotonic()
    if not now and moment - run.last_cancel_check < CANCEL_CHECK_INTERVAL:
        return False
    run.last_cancel_check = moment
    async with run.ctx.session_factory() as db:
        return await jobs_service.cancel_requested(db_session=db, job_id=run.job.id)


async def _progress(run: _Run, *, force: bool = False) -> None:
    now = time.monotonic()
    if not force and now - run.last_progress < PROGRESS_INTERVAL:
        return
    run.last_progress = now
    job = run.job
    job.progress = min(1.0, job.processed / job.total) if job.total else 0.0
    async with run.ctx.session_factory() as db:
        db.add(job)
        await db.commit()
    await _publish_job(run.ctx, job)


async def _publish_versions(run: _Run) -> None:
    band = f"band:{run.source.band_id}"
    for version_id in run.added_ids:
        await run.ctx.publish(band, {"type": "VersionAdded", "version_id": version_id})
    for version_id in run.updated_ids:
        await run.ctx.publish(band, {"type": "VersionUpdated", "version_id": version_id})
    run.added_ids.clear()
    run.updated_ids.clear()


async def _publish_job(ctx: ScanContext, job: Job) -> None:
    snapshot = jobs_service.snapshot(job)
    await ctx.publish(f"job:{job.id}", snapshot)
    await ctx.publish(f"band:{job.band_id}", {"type": "JobUpdated", "job": snapshot})


async def _end(ctx: ScanContext, job: Job, status: JobStatus, message: str) -> None:
    async with ctx.session_factory() as db:
        # add, not merge: only what this scan changed is written, so a cancel request or
        # a send time recorded meanwhile by another process stays.
        db.add(job)
        jobs_service.finish(job, status, message=message)
        await db.commit()
    await _publish_job(ctx, job)
