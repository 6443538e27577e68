"""A scan of one source, as named phases that each report progress:

walk (list files, no opening) → diff (against the index, in memory) → register (open new
and changed files, write in batches) → mark missing (what the walk did not find)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import String, bindparam, delete, func, insert, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.database import utcnow
from backend.core.settings import Settings
from backend.jobs import service as jobs_service
from backend.jobs.events import Publish, publish_job
from backend.jobs.heartbeat import heartbeat
from backend.jobs.models import Job, JobStatus
from backend.jobs.queue import JobQueue, QueuedJob
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
from backend.library.scanner.local import LocalReader
from backend.library.scanner.readers import open_reader
from backend.media import pipeline as media_pipeline

logger = logging.getLogger("backline.scan")

# A batch is written in one transaction. The first ones are small, so that the first takes
# and a cancel come soon, and the size doubles up to BATCH: fewer, larger transactions
# are most of what makes a first scan fast. A WebDAV batch is read in ranged GETs,
# seconds of them, so it stays at REMOTE_BATCH.
BATCH = 500
FIRST_BATCH = 50
REMOTE_BATCH = 100
PROGRESS_INTERVAL = 0.1  # at most ~10 progress events a second per job

_MISSING = VersionStatus.MISSING.value
_VERSIONS = TrackVersion.__table__
# Changed and moved files, each kind a batch's in one executemany. A moved or renamed
# file (same bytes) keeps its take's status and media; a file changed in place is
# processed again.
_MOVE = (
    update(_VERSIONS)
    .where(_VERSIONS.c.id == bindparam("version_id"))
    .values(
        path=bindparam("new_path"),
        change_marker=bindparam("new_marker"),
        content_hash=bindparam("new_hash"),
        size_bytes=bindparam("new_size"),
        format=bindparam("new_format"),
    )
)
_CHANGE = _MOVE.values(status=VersionStatus.PENDING)


@dataclass(frozen=True)
class ScanContext:
    session_factory: async_sessionmaker[AsyncSession]
    settings: Settings
    publish: Publish
    # Where the media jobs of new and changed takes are sent once their batch commits;
    # without one (a bare test context) the job sweeper sends them a few seconds later.
    queue: JobQueue | None = None


# What the index knows of a path: (version id, change marker, status, content hash). A
# plain tuple: an index holds one per file, and tuples of plain values are no work for
# the garbage collector.
Indexed = tuple[int, str | None, str, str | None]


@dataclass
class _Run:
    ctx: ScanContext
    job: Job
    source: Source
    reader: SourceReader
    added_ids: list[int] = field(default_factory=list)
    updated_ids: list[int] = field(default_factory=list)
    # The band's sessions and tracks (normalised title -> id), read at the first batch
    # that adds a take and kept up to date.
    sessions: dict[date, int] | None = None
    track_keys: dict[str, int] | None = None
    tracks: dict[str, int] = field(default_factory=dict)  # title as the path gives it
    # Paths that failed; the folders above them are listed again next time.
    failed_paths: list[str] = field(default_factory=list)
    last_progress: float = 0.0


async def run_scan(ctx: ScanContext, job_id: int) -> None:
    """Run the scan job; a second delivery of the same job is harmless."""
    async with ctx.session_factory() as db:
        job = await jobs_service.start(db_session=db, job_id=job_id)
        await db.commit()
        if job is None:
            return
        source = await db.get(Source, job.source_id)
    await publish_job(ctx.publish, job)
    if source is None:
        await _end(ctx, job, JobStatus.FAILED, "The source was removed.")
        return
    if source.removed_at is not None:
        # Removed just as the job started: the removal asked it to stop (sources.remove).
        await _end(ctx, job, JobStatus.CANCELLED, "Cancelled: the source was removed.")
        return
    async with heartbeat(ctx.session_factory, job.id):
        try:
            async with open_reader(source, ctx.settings) as reader:
                with _young_objects_only():
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


@contextmanager
def _young_objects_only() -> Iterator[None]:
    """While a scan runs, the cyclic garbage collector leaves alone what existed before it
    (gc.freeze): a scan holds tens of thousands of objects (the walk, the index), and
    each full collection would otherwise also go through the whole process's heap
    (≈0.1 s each, up to a third of an unchanged re-scan). Nothing is lost: what was
    frozen is collected as usual once the scan ends.

    Only where nothing is frozen yet: the api process freezes what it loaded at start for
    good (backend/app.py), and a scan there must not undo that; nor is anything unfrozen
    that someone else froze meanwhile. Of two scans at once, the first does it."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        yield
    finally:
        if gc.get_freeze_count() <= frozen:  # else someone froze more on purpose: leave it
            gc.unfreeze()


async def _scan(run: _Run) -> bool:
    """The phases; True when cancelled."""
    job = run.job
    source_id = run.source.id

    # Phase 1: walk, while the index is read (the walk is a thread, or PROPFINDs).
    async def walk_source() -> tuple[Walk, dict[str, str]]:
        known_folders = await load_folder_markers(run.ctx.session_factory, source_id)
        return await run.reader.walk(known_folders), known_folders

    (walk, known_folders), index = await asyncio.gather(
        walk_source(), load_index(run.ctx.session_factory, source_id)
    )
    failed_dirs = {error.path for error in walk.errors}
    for error in walk.errors:
        jobs_service.record_error(job, path=error.path, message=error.message)
        run.failed_paths.append(error.path)

    # Phase 2: diff against the index. What is left in `gone` was not seen.
    gone = dict(index)
    take = gone.pop
    skipped = 0
    todo: list[tuple[FoundFile, Indexed | None]] = []
    returning: list[int] = []
    if walk.unchanged_folders:
        # Not listed, as nothing changed below them: their files are as indexed.
        for path in [path for path in gone if below_any(path, walk.unchanged_folders)]:
            if take(path)[2] != _MISSING:
                job.processed += 1
    job.total = len(walk.files) + job.processed
    for file in walk.files:
        known = take(file.path, None)
        if known is None:
            if worth_opening(file.path):
                todo.append((file, None))
            else:
                skipped += 1
        elif known[1] != file.marker:
            todo.append((file, known))
        elif known[2] == _MISSING:
            returning.append(known[0])
    # Counted once here, not per file: each count is an attribute of an ORM object.
    job.processed += len(walk.files) - len(todo)
    job.skipped += skipped
    if failed_dirs:  # not seen, as their folder could not be read: not gone either
        gone = {path: known for path, known in gone.items() if not below_any(path, failed_dirs)}
    await _progress(run, force=True)

    # Phase 3: register new and changed files, in batches.
    moved_from: dict[str, list[str]] = {}
    for path, known in gone.items():
        if known[3]:
            moved_from.setdefault(known[3], []).append(path)
    batches = _batches(todo, remote=not isinstance(run.reader, LocalReader))
    # The next batch is read (a thread, or ranged GETs) while this one is written.
    reading = _read_ahead(run, batches, 0)
    try:
        for number, batch in enumerate(batches):
            assert reading is not None
            inspected = await reading
            reading = _read_ahead(run, batches, number + 1)
            if await _write_batch(run, batch, inspected, gone, moved_from):
                return True
            await _progress(run)
    finally:
        if reading is not None:
            reading.cancel()

    # Phase 4: what is gone is MISSING (comments and reactions stay on it); what came
    # back is restored.
    async with run.ctx.session_factory() as db:
        if await jobs_service.cancel_requested(db_session=db, job_id=job.id):
            return True
        if gone:
            await db.execute(
                update(TrackVersion)
                .where(TrackVersion.id.in_([known[0] for known in gone.values()]))
                .values(status=VersionStatus.MISSING)
            )
        media_jobs: list[QueuedJob] = []
        if returning:
            # Restored, and processed again: the file may have been replaced meanwhile.
            media_jobs = await _queue_media(db, run, new_ids=[], changed_ids=returning)
            job.updated += len(returning)
            run.updated_ids += returning
        db.add(job)
        await _save_folder_markers(db, run, walk, known_folders)
        await db.commit()
    await _send_media(run, media_jobs)
    return False


def _batches(
    todo: list[tuple[FoundFile, Indexed | None]], *, remote: bool
) -> list[list[tuple[FoundFile, Indexed | None]]]:
    most = min(BATCH, REMOTE_BATCH) if remote else BATCH
    size, start, batches = min(FIRST_BATCH, most), 0, []
    while start < len(todo):
        batches.append(todo[start : start + size])
        start += size
        size = min(most, size * 2)
    return batches


def _read_ahead(
    run: _Run, batches: list[list[tuple[FoundFile, Indexed | None]]], number: int
) -> asyncio.Task[list[Inspected | Exception]] | None:
    if number >= len(batches):
        return None
    return asyncio.create_task(run.reader.inspect([file for file, _ in batches[number]]))


async def _write_batch(
    run: _Run,
    batch: list[tuple[FoundFile, Indexed | None]],
    inspected: list[Inspected | Exception],
    gone: dict[str, Indexed],
    moved_from: dict[str, list[str]],
) -> bool:
    """One transaction for the batch, a handful of statements whatever its size; True
    (and nothing written) when the job was asked to stop.

    What needs no database is done before the transaction: on SQLite it holds the one
    write lock, and a writer waiting for it (a cancel, a comment) gets in between."""
    job, band_id = run.job, run.source.band_id
    failures: list[tuple[FoundFile, Exception]] = []
    changed: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    new: list[tuple[FoundFile, Inspected]] = []
    for (file, known), result in zip(batch, inspected, strict=True):
        was_moved = False
        if type(result) is not Inspected:
            failures.append((file, result))
            continue
        if known is None and moved_from.get(result.content_hash):
            # The same bytes left another path in this source: a move or rename. The
            # take keeps its version, comments and reactions. Among identical copies,
            # the one from the same folder is the likelier.
            candidates = moved_from[result.content_hash]
            folder = file.path.rpartition("/")[0]
            old_path = next(
                (path for path in candidates if path.rpartition("/")[0] == folder),
                candidates[0],
            )
            candidates.remove(old_path)
            known = gone.pop(old_path)
            was_moved = True
        if known is None:
            new.append((file, result))
            continue
        (moved if was_moved else changed).append(
            {
                "version_id": known[0],
                "new_path": file.path,
                "new_marker": file.marker,
                "new_hash": result.content_hash,
                "new_size": file.size,
                "new_format": result.format,
            }
        )
    takes = _new_takes(run, new)
    async with run.ctx.session_factory() as db:
        # Numbers of new takes are read under the band's lock, afresh each batch:
        # another scan of the band may have added takes meanwhile. On SQLite this also
        # takes the write lock first, so what is read next is current.
        await library_service.lock_numbering(db_session=db, band_id=band_id)
        if await jobs_service.cancel_requested(db_session=db, job_id=job.id):
            return True
        for file, result in failures:
            _not_indexed(run, file, result)
        changed_ids = [row["version_id"] for row in changed]
        updated_ids = changed_ids + [row["version_id"] for row in moved]
        if changed:
            await db.execute(_CHANGE, changed)
        if moved:
            await db.execute(_MOVE, moved)
        added_ids = await _insert_new_takes(db, run, takes) if takes else []
        # Phase 3b, in the same transaction: the media work of new and changed takes (a
        # moved one keeps what it has); the messages go after the commit.
        media_jobs = await _queue_media(db, run, new_ids=added_ids, changed_ids=changed_ids)
        job.processed += len(batch)
        job.added += len(added_ids)
        job.updated += len(updated_ids)
        job.progress = min(1.0, job.processed / job.total) if job.total else 0.0
        db.add(job)
        await db.commit()
    run.added_ids += added_ids
    run.updated_ids += updated_ids
    await _send_media(run, media_jobs)
    return False


async def _queue_media(
    db: AsyncSession, run: _Run, *, new_ids: list[int], changed_ids: list[int]
) -> list[QueuedJob]:
    band_id, requested_by = run.source.band_id, run.job.created_by_id
    jobs = []
    for ids, fresh in ((new_ids, True), (changed_ids, False)):
        if ids:
            jobs += await media_pipeline.queue_probes(
                db_session=db,
                takes=[media_pipeline.TakeToProcess(version_id=i, band_id=band_id) for i in ids],
                created_by_id=requested_by,
                fresh=fresh,
            )
    return jobs


async def _send_media(run: _Run, jobs: list[QueuedJob]) -> None:
    # The band hears of the takes before any JobUpdated about them: a worker may pick a
    # job up at once.
    await _publish_versions(run)
    if jobs and run.ctx.queue is not None:
        await run.ctx.queue.send_committed(jobs, session_factory=run.ctx.session_factory)


def _not_indexed(run: _Run, file: FoundFile, result: Exception) -> None:
    if isinstance(result, NotAudio):
        run.job.skipped += 1
        return
    if isinstance(result, _BadTitle):
        message = "Its folder or name cannot be a track title."
    elif isinstance(result, PermissionError):
        message = "Permission denied."
    elif isinstance(result, FileNotFoundError):
        message = "It disappeared during the scan."
    elif isinstance(result, OSError):
        message = f"Could not be read: {result.strerror or result}."
    else:
        message = f"Could not be read: {result}."
    jobs_service.record_error(run.job, path=file.path, message=message)
    run.failed_paths.append(file.path)


class _BadTitle(Exception):
    pass


@dataclass(slots=True)
class _NewTake:
    file: FoundFile
    place: paths.RecordingPlace
    row: dict[str, Any]  # without track, session and number: those need the database


def _new_takes(run: _Run, new: list[tuple[FoundFile, Inspected]]) -> list[_NewTake]:
    now = utcnow()
    band_id, source_id = run.source.band_id, run.source.id
    takes = []
    for file, result in new:
        place = paths.place_recording(file.path)
        tags = result.tags
        row = {
            "band_id": band_id,
            "source_id": source_id,
            "path": file.path,
            "original_filename": file.path.rpartition("/")[2],
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
            "created_at": now,
        }
        takes.append(_NewTake(file, place, row))
    return takes


async def _insert_new_takes(db: AsyncSession, run: _Run, takes: list[_NewTake]) -> list[int]:
    """The batch's new takes: their tracks and sessions found or made (a statement or two,
    only for titles and dates not seen before), numbered after each track's newest (one
    grouped read, under the band's lock), inserted in one statement. Their ids."""
    band_id = run.source.band_id
    if run.track_keys is None or run.sessions is None:
        run.track_keys = await library_service.band_track_ids(db_session=db, band_id=band_id)
        run.sessions = await library_service.band_session_ids(db_session=db, band_id=band_id)
    tracks, sessions = run.tracks, run.sessions
    titles = [take.place.track_title for take in takes if take.place.track_title not in tracks]
    if titles:
        tracks.update(
            await library_service.track_ids_for_titles(
                db_session=db, band_id=band_id, titles=titles, known=run.track_keys
            )
        )
    dates = [
        take.place.session_date
        for take in takes
        if take.place.session_date is not None and take.place.session_date not in sessions
    ]
    if dates:
        await library_service.session_ids_for_dates(
            db_session=db, band_id=band_id, dates=dates, known=sessions
        )
    track_ids = sorted(
        {tracks[take.place.track_title] for take in takes if take.place.track_title in tracks}
    )
    next_number = dict.fromkeys(track_ids, 1)
    if track_ids:
        highest = await db.execute(
            select(TrackVersion.track_id, func.max(TrackVersion.number))
            .where(TrackVersion.track_id.in_(track_ids))
            .group_by(TrackVersion.track_id)
        )
        next_number.update({track_id: (top or 0) + 1 for track_id, top in highest})
    rows = []
    for take in takes:
        place = take.place
        track_id = tracks.get(place.track_title)
        if track_id is None:  # a title validation refused (control characters only)
            _not_indexed(run, take.file, _BadTitle())
            continue
        number = next_number[track_id]
        next_number[track_id] = number + 1
        row = take.row
        row["track_id"] = track_id
        row["session_id"] = sessions.get(place.session_date) if place.session_date else None
        row["number"] = number
        rows.append(row)
    if not rows:
        return []
    inserted = await db.execute(insert(_VERSIONS).returning(_VERSIONS.c.id), rows)
    added_ids = list(inserted.scalars())
    # Track.last_recorded_at (the RECENTLY_RECORDED order), one statement for the batch.
    touched = sorted({row["track_id"] for row in rows})
    await library_service.touch_recorded(db_session=db, track_ids=touched)
    return added_ids


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


async def load_index(
    session_factory: async_sessionmaker[AsyncSession], source_id: int
) -> dict[str, Indexed]:
    """path -> (version id, change marker, status, content hash) of the source's takes:
    columns as plain values (the status as its text), no ORM objects."""
    columns = _VERSIONS.c
    async with session_factory() as db:
        rows = await db.execute(
            select(
                columns.path,
                columns.id,
                columns.change_marker,
                type_coerce(columns.status, String),
                columns.content_hash,
            ).where(columns.source_id == source_id)
        )
        return {path: (vid, marker, status, digest) for path, vid, marker, status, digest in rows}


async def _progress(run: _Run, *, force: bool = False) -> None:
    """Tell subscribers (at most every PROGRESS_INTERVAL). A batch writes its counts in
    its own transaction; only the first report, after the diff, writes the job row."""
    now = time.monotonic()
    if not force and now - run.last_progress < PROGRESS_INTERVAL:
        return
    run.last_progress = now
    job = run.job
    if force:
        job.progress = min(1.0, job.processed / job.total) if job.total else 0.0
        async with run.ctx.session_factory() as db:
            db.add(job)
            await db.commit()
    await publish_job(run.ctx.publish, job)


async def _publish_versions(run: _Run) -> None:
    band = f"band:{run.source.band_id}"
    for version_id in run.added_ids:
        await run.ctx.publish(band, {"type": "VersionAdded", "version_id": version_id})
    for version_id in run.updated_ids:
        await run.ctx.publish(band, {"type": "VersionUpdated", "version_id": version_id})
    run.added_ids.clear()
    run.updated_ids.clear()


async def _end(ctx: ScanContext, job: Job, status: JobStatus, message: str) -> None:
    async with ctx.session_factory() as db:
        # add, not merge: only what this scan changed is written, so a cancel request or
        # a send time recorded meanwhile by another process stays.
        db.add(job)
        jobs_service.finish(job, status, message=message)
        await db.commit()
    await publish_job(ctx.publish, job)
