"""Running the media jobs of a take: what the actors `media.probe`, `media.analyze` and
`media.transcode` call. See pipeline.py for the chain and the version's status.

A file that cannot be used (not audio, damaged, gone) fails its job and the version
with a reason a person understands, and the worker goes on; a share that is down
raises, so Dramatiq retries later. An analyser or encoder that breaks on odd input is
logged and fails the take, never the worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.settings import Settings
from backend.jobs import service as jobs_service
from backend.jobs.events import Publish, publish_job, publish_version_updated
from backend.jobs.heartbeat import heartbeat
from backend.jobs.models import Job, JobStatus
from backend.jobs.queue import JobQueue
from backend.library.models import Source, TrackVersion, VersionStatus
from backend.media import assets, pipeline, results, transcode
from backend.media.analysis import analyze
from backend.media.decode import MediaError
from backend.media.models import Asset
from backend.media.originals import OriginalUnavailable, original_file
from backend.media.probe import ProbeResult, probe
from backend.media.storage import Storage, rendition_prefix
from backend.media.streaming import headers

logger = logging.getLogger("backline.media")

PROGRESS_INTERVAL = 0.2  # seconds between progress writes of a job
T = TypeVar("T")


@dataclass(frozen=True)
class MediaContext:
    session_factory: async_sessionmaker[AsyncSession]
    settings: Settings
    publish: Publish
    storage: Storage
    queue: JobQueue


class _Failed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Take:
    job: Job
    version: TrackVersion
    source: Source | None
    asset: Asset | None


async def run_probe(ctx: MediaContext, job_id: int) -> None:
    take = await _begin(ctx, job_id, processing=True)
    if take is None:
        return
    job = take.job
    async with heartbeat(ctx.session_factory, job.id):
        try:
            found = await _on_original(ctx, take, probe)
            cover_id = None
            if found.cover is not None:
                stored = await ctx.storage.put_bytes(found.cover.data)
                async with ctx.session_factory() as db:
                    cover = await assets.record(db_session=db, stored=stored, mime=found.cover.mime)
                    await db.commit()
                cover_id = cover.id
        except _Failed as failure:
            await _fail(ctx, take, failure.reason)
            return
        async with ctx.session_factory() as db:
            version = await _lock_or_end(ctx, db, take)
            if version is None:
                return
            results.apply_probe(version, found, cover_asset_id=cover_id)
            next_jobs = await pipeline.queue_after_probe(db_session=db, probe=job)
            db.add(job)
            jobs_service.finish(job, JobStatus.SUCCEEDED, message=results.probe_summary(found))
            await db.commit()
    await ctx.queue.send_committed(next_jobs, session_factory=ctx.session_factory)
    await publish_job(ctx.publish, job)
    await publish_version_updated(ctx.publish, band_id=job.band_id, version_id=take.version.id)


async def run_analyze(ctx: MediaContext, job_id: int) -> None:
    take = await _begin(ctx, job_id)
    if take is None:
        return
    async with heartbeat(ctx.session_factory, take.job.id):
        try:
            found = await _on_original(ctx, take, analyze)
            waveform_files = await results.store_waveforms(ctx.storage, found.waveforms)
        except _Failed as failure:
            await _fail(ctx, take, failure.reason)
            return
        async with ctx.session_factory() as db:
            version = await _lock_or_end(ctx, db, take)
            if version is None:
                return
            await results.save_analysis(
                db_session=db, version=version, result=found, waveform_files=waveform_files
            )
            await _settle_and_end(ctx, db, take, version, _analysis_summary(found))


async def run_transcode(ctx: MediaContext, job_id: int) -> None:
    take = await _begin(ctx, job_id)
    if take is None:
        return
    version = take.version
    async with heartbeat(ctx.session_factory, take.job.id), _Progress(ctx, take.job) as progress:
        try:
            async with _original(ctx, take) as path:
                with tempfile.TemporaryDirectory(
                    prefix="transcode-", dir=_scratch(ctx.settings)
                ) as scratch:
                    made = await _media_call(
                        transcode.transcode,
                        path,
                        Path(scratch),
                        name=version.original_filename,
                        normalized=ctx.settings.transcode_normalized,
                        probed=_probed(version),
                        progress=progress.report,
                        cancel=progress.cancel_requested,
                    )
                    keys = await _store_renditions(ctx.storage, version.id, made)
        except transcode.TranscodeCancelled:
            await _settle_after(ctx, take, JobStatus.CANCELLED, "Cancelled.")
            return
        except _Failed as failure:
            await _fail(ctx, take, failure.reason)
            return
    async with ctx.session_factory() as db:
        locked = await _lock_or_end(ctx, db, take)
        if locked is None:
            return
        for format, key in keys.items():
            await results.save_rendition(
                db_session=db, version_id=version.id, format=format, storage_key=key
            )
        await _settle_and_end(ctx, db, take, locked, "Transcoded: " + ", ".join(sorted(keys)))


# -- the parts every media job shares ------------------------------------------------


async def _begin(ctx: MediaContext, job_id: int, *, processing: bool = False) -> _Take | None:
    """Start the job (None: nothing to do) and load its take; the probe marks the take
    PROCESSING."""
    async with ctx.session_factory() as db:
        job = await jobs_service.start(db_session=db, job_id=job_id)
        if job is None:
            gave_up = await _gave_up(db, job_id)
            await db.commit()
            if gave_up is not None:
                await publish_version_updated(
                    ctx.publish, band_id=gave_up[0], version_id=gave_up[1]
                )
            return None
        version = None
        if job.version_id is not None:
            # Read under the take's lock: a scan marking it MISSING meanwhile must not be
            # overwritten with PROCESSING below.
            version = await pipeline.lock_version(db_session=db, version_id=job.version_id)
        if version is None or version.status == VersionStatus.MISSING:
            why = "The take was deleted." if version is None else "The take's file is missing."
            await _end(ctx, db, job, JobStatus.CANCELLED, why)
            return None
        source = await db.get(Source, version.source_id) if version.source_id else None
        asset = await db.get(Asset, version.asset_id) if version.asset_id else None
        changed = processing and version.status != VersionStatus.PROCESSING
        if changed:
            version.status = VersionStatus.PROCESSING
            version.failure_reason = None
        await db.commit()
    await publish_job(ctx.publish, job)
    if changed:
        await publish_version_updated(ctx.publish, band_id=job.band_id, version_id=version.id)
    return _Take(job=job, version=version, source=source, asset=asset)


async def _gave_up(db: AsyncSession, job_id: int) -> tuple[int, int] | None:
    """A job no worker could finish ends FAILED in ``start``; its take fails with it
    rather than waiting for it forever. (band id, version id) when that happened now."""
    job = await db.get(Job, job_id)
    if job is None or job.status != JobStatus.FAILED or job.version_id is None:
        return None
    version = await pipeline.lock_version(db_session=db, version_id=job.version_id)
    if version is None or version.status not in (VersionStatus.PENDING, VersionStatus.PROCESSING):
        return None
    pipeline.fail_version(version, job.message or "The work on this take kept failing.")
    return job.band_id, version.id


@contextlib.asynccontextmanager
async def _original(ctx: MediaContext, take: _Take) -> AsyncIterator[Path]:
    try:
        async with original_file(
            version=take.version,
            source=take.source,
            asset=take.asset,
            storage=ctx.storage,
            settings=ctx.settings,
        ) as path:
            yield path
    except OriginalUnavailable as error:
        if error.retry:
            raise  # a share that is down: Dramatiq tries again later
        raise _Failed(error.message) from error


async def _on_original(ctx: MediaContext, take: _Take, function: Callable[..., T]) -> T:
    """``function(path)`` on the take's original (probe, analyze)."""
    async with _original(ctx, take) as path:
        return await _media_call(function, path, name=take.version.original_filename)


async def _media_call(
    function: Callable[..., T], path: Path, *args: Any, name: str, **kwargs: Any
) -> T:
    """Run ffmpeg/Essentia work on ``path`` off the event loop; its failures fail the take
    only, and their messages name the file as the band knows it, not the stored copy."""
    try:
        return await asyncio.to_thread(function, path, *args, **kwargs)
    except MediaError as error:
        raise _Failed(error.message.replace(path.name, name)) from error
    except (transcode.TranscodeCancelled, asyncio.CancelledError):
        raise
    except Exception as error:
        logger.exception("%s failed on unexpected input", getattr(function, "__name__", function))
        raise _Failed(
            "The recording could not be processed (an internal error, logged by the worker)."
        ) from error


async def _lock_or_end(ctx: MediaContext, db: AsyncSession, take: _Take) -> TrackVersion | None:
    """The take, locked to write its results; None (and the job CANCELLED) if it is gone."""
    version = await pipeline.lock_version(db_session=db, version_id=take.version.id)
    if version is None:
        await _end(ctx, db, take.job, JobStatus.CANCELLED, "The take was deleted.")
    return version


async def _fail(ctx: MediaContext, take: _Take, reason: str) -> None:
    """The job FAILED and the take FAILED with the same reason."""
    async with ctx.session_factory() as db:
        version = await pipeline.lock_version(db_session=db, version_id=take.version.id)
        if version is not None:
            pipeline.fail_version(version, reason)
        await _end(ctx, db, take.job, JobStatus.FAILED, reason)
    await publish_version_updated(ctx.publish, band_id=take.job.band_id, version_id=take.version.id)


async def _settle_after(ctx: MediaContext, take: _Take, status: JobStatus, why: str) -> None:
    """End an analyze or transcode job that did not succeed, and settle the take."""
    async with ctx.session_factory() as db:
        version = await pipeline.lock_version(db_session=db, version_id=take.version.id)
        db.add(take.job)
        jobs_service.finish(take.job, status, message=why)
        await db.flush()
        if version is not None:
            await pipeline.settle(db_session=db, version=version)
        await db.commit()
    await publish_job(ctx.publish, take.job)
    await publish_version_updated(ctx.publish, band_id=take.job.band_id, version_id=take.version.id)


async def _settle_and_end(
    ctx: MediaContext, db: AsyncSession, take: _Take, version: TrackVersion, message: str
) -> None:
    db.add(take.job)
    jobs_service.finish(take.job, JobStatus.SUCCEEDED, message=message)
    await db.flush()
    await pipeline.settle(db_session=db, version=version)
    await db.commit()
    await publish_job(ctx.publish, take.job)
    await publish_version_updated(ctx.publish, band_id=take.job.band_id, version_id=version.id)


async def _end(ctx: MediaContext, db: AsyncSession, job: Job, status: JobStatus, why: str) -> None:
    db.add(job)
    jobs_service.finish(job, status, message=why)
    await db.commit()
    await publish_job(ctx.publish, job)


async def _store_renditions(
    storage: Storage, version_id: int, made: transcode.TranscodeResult
) -> dict[str, str]:
    """Each rendition under its prefix, replacing an earlier transcode; format → key of
    what a player opens (the HLS playlist, the MP3 file)."""
    keys = {}
    for format, entry in (
        ("hls", made.hls_playlist),
        ("mp3", made.mp3),
        ("hls_normalized", made.normalized_playlist),
    ):
        prefix = rendition_prefix(version_id=version_id, format=format)
        await storage.delete_prefix(prefix)
        if entry is None:
            continue
        if entry.suffix == ".m3u8":  # a playlist and its segments, in their folder
            await storage.put_directory(
                entry.parent, prefix=prefix, content_types=headers.BY_SUFFIX
            )
        else:
            await storage.put_file(
                entry, key=prefix + entry.name, content_type=headers.BY_SUFFIX.get(entry.suffix)
            )
        keys[format] = prefix + entry.name
    return keys


def _probed(version: TrackVersion) -> ProbeResult | None:
    """The probe's findings as the version keeps them, so the encoder need not probe."""
    if None in (version.duration_ms, version.sample_rate, version.channels):
        return None
    return ProbeResult(
        duration_ms=version.duration_ms or 0,
        format=version.format or "",
        codec=version.codec or "",
        sample_rate=version.sample_rate or 0,
        channels=version.channels or 0,
        bitrate=version.bitrate,
    )


def _analysis_summary(found: Any) -> str:
    parts = []
    if found.bpm is not None:
        parts.append(f"{found.bpm:.1f} BPM")
    if found.key is not None:
        parts.append(f"{found.key} {found.scale}")
    if found.loudness_lufs is not None:
        parts.append(f"{found.loudness_lufs:.1f} LUFS")
    return "Analysed: " + (", ".join(parts) if parts else "no tempo, key or loudness found.")


def _scratch(settings: Settings) -> Path:
    path = settings.data_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Progress:
    """A job's progress as a thread reports it, written and published at most every
    PROGRESS_INTERVAL from the event loop; also whether someone asked to cancel."""

    def __init__(self, ctx: MediaContext, job: Job) -> None:
        self._ctx, self._job = ctx, job
        self._fraction = 0.0
        self._cancel = False
        self._task: asyncio.Task[None] | None = None

    def report(self, fraction: float) -> None:  # called from the encoder's thread
        self._fraction = max(self._fraction, min(1.0, fraction))

    def cancel_requested(self) -> bool:  # called from the encoder's thread
        return self._cancel

    async def __aenter__(self) -> _Progress:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        written = 0.0
        last_cancel_check = 0.0
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            try:
                if time.monotonic() - last_cancel_check > 1.0:
                    last_cancel_check = time.monotonic()
                    async with self._ctx.session_factory() as db:
                        self._cancel = await jobs_service.cancel_requested(
                            db_session=db, job_id=self._job.id
                        )
                if self._fraction > written:
                    written = self._fraction
                    async with self._ctx.session_factory() as db:
                        await jobs_service.set_progress(
                            db_session=db, job_id=self._job.id, progress=written
                        )
                        await db.commit()
                    self._job.progress = written
                    await publish_job(self._ctx.publish, self._job)
            except Exception:  # progress is best effort; the work goes on
                logger.warning("job %s: progress not recorded", self._job.id, exc_info=True)
