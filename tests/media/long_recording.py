"""Run a take's whole media chain (probe → analyze → transcode, the job code the actors
run) in this process on one WAV, then print a JSON report with this process's peak
memory and that of its largest ffmpeg child.

    python -m tests.media.long_recording PATH DATA_DIR

PATH sits in a LOCAL_FOLDER source, read in place as a scanned take is. Used by
test_long_recording.py in a fresh interpreter, so that the peak is this chain's alone.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path

from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

import backend.models  # noqa: F401 - every table on the metadata
from backend.bands.models import Band
from backend.core.database import create_engine, create_session_factory
from backend.core.migrations import upgrade_to_head
from backend.core.settings import Settings
from backend.jobs.models import Job, JobKind, JobStatus
from backend.jobs.queue import JobQueue
from backend.library import service as library_service
from backend.library.models import Source, SourceKind, TrackVersion
from backend.media import pipeline, work
from backend.media.models import Analysis, Rendition
from backend.media.storage import create_storage


def peak_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


async def main(path: Path, data_dir: Path) -> dict[str, object]:
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'chain.db'}",
        secret_key="long-recording-test-secret-key-0123456789",
    )
    engine = create_engine(settings.resolved_database_url)
    await upgrade_to_head(engine)
    session_factory = create_session_factory(engine)
    async with session_factory() as db:
        band = Band(name="Long", slug="long")
        db.add(band)
        await db.flush()
        source = Source(
            band_id=band.id, kind=SourceKind.LOCAL_FOLDER, name="x", root=str(path.parent)
        )
        db.add(source)
        await db.flush()
        track = await library_service.get_or_create_track(
            db_session=db, band_id=band.id, title="Rehearsal"
        )
        version = await library_service.add_version(
            db_session=db,
            track=track,
            original_filename=path.name,
            source_id=source.id,
            path=path.name,
        )
        await pipeline.queue_probes(
            db_session=db, takes=[pipeline.TakeToProcess(version_id=version.id, band_id=band.id)]
        )
        await db.commit()
        version_id = version.id

    broker = StubBroker()
    broker.declare_queue("media")

    async def publish(channel: str, message: dict[str, object]) -> None:
        return None

    storage = create_storage(settings)
    ctx = work.MediaContext(
        session_factory=session_factory,
        settings=settings,
        publish=publish,
        storage=storage,
        queue=JobQueue(broker),
    )
    runners = {
        JobKind.PROBE: work.run_probe,
        JobKind.ANALYZE: work.run_analyze,
        JobKind.TRANSCODE: work.run_transcode,
    }
    before = peak_kb()
    seconds: dict[str, float] = {}
    while True:
        async with session_factory() as db:
            queued = list(await db.scalars(select(Job).where(Job.status == JobStatus.QUEUED)))
        if not queued:
            break
        for job in queued:
            started = time.monotonic()
            await runners[job.kind](ctx, job.id)
            seconds[job.kind.value] = round(time.monotonic() - started, 1)
    async with session_factory() as db:
        version = await db.get(TrackVersion, version_id)
        analysis = await db.scalar(select(Analysis).where(Analysis.version_id == version_id))
        formats = sorted(await db.scalars(select(Rendition.format)))
        jobs = {job.kind.value: job.status.value for job in await db.scalars(select(Job))}
    await engine.dispose()
    return {
        "status": version.status.value,
        "failure_reason": version.failure_reason,
        "duration_ms": version.duration_ms,
        "bpm": analysis.bpm if analysis else None,
        "loudness_lufs": analysis.loudness_lufs if analysis else None,
        "renditions": formats,
        "jobs": jobs,
        "seconds": seconds,
        "before_kb": before,
        "peak_kb": peak_kb(),
        # Linux carries ru_maxrss over fork + exec: a child that stayed smaller than this
        # process reports this process's size then, so the figure is an upper bound.
        "largest_child_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }


if __name__ == "__main__":
    report = asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
    print(json.dumps(report))
