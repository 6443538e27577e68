"""The media work of a take, as jobs: probe, then analyze and transcode side by side.

    new or changed take ──► PROBE ──► ANALYZE   ─┐
       (scan, upload)          └────► TRANSCODE ─┴─► version READY (or FAILED, with why)

Each step is a Job row the band can follow, made in the same transaction as what asks
for it and sent after commit (the outbox, as for scans). The probe makes the next two
jobs when it succeeds, in its own transaction, so a crash can strand nothing; Dramatiq's
pipeline and group would chain the messages, not the rows, and lose the chain when a
message is lost. Whoever finishes last of analyze and transcode settles the version,
under a lock on its row so that two finishing at once both see each other.

Version status: PENDING (queued) → PROCESSING (probe started) → READY | FAILED."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.database import utcnow
from backend.jobs.models import Job, JobKind, JobStatus
from backend.jobs.queue import QueuedJob
from backend.library.models import TrackVersion, VersionStatus

MEDIA_KINDS = (JobKind.PROBE, JobKind.ANALYZE, JobKind.TRANSCODE)
AFTER_PROBE = (JobKind.ANALYZE, JobKind.TRANSCODE)


@dataclass(frozen=True)
class TakeToProcess:
    version_id: int
    band_id: int


async def queue_probes(
    *,
    db_session: AsyncSession,
    takes: Sequence[TakeToProcess],
    created_by_id: int | None = None,
    fresh: bool = False,
) -> list[QueuedJob]:
    """A PROBE job for each take (one INSERT for all), the takes set back to PENDING;
    media jobs of these takes still waiting are superseded (``fresh``: takes just made,
    which have none and are PENDING, so one statement does). Send the jobs after commit."""
    if not takes:
        return []
    if fresh:
        return await _insert_jobs(
            db_session,
            [(take.band_id, take.version_id, JobKind.PROBE) for take in takes],
            created_by_id=created_by_id,
        )
    version_ids = [take.version_id for take in takes]
    await db_session.execute(
        update(Job)
        .where(
            Job.version_id.in_(version_ids),
            Job.kind.in_(MEDIA_KINDS),
            Job.status == JobStatus.QUEUED,
        )
        .values(status=JobStatus.CANCELLED, finished_at=utcnow(), message="Superseded.")
        .execution_options(synchronize_session=False)
    )
    await db_session.execute(
        update(TrackVersion)
        .where(TrackVersion.id.in_(version_ids), TrackVersion.status != VersionStatus.MISSING)
        .values(status=VersionStatus.PENDING, failure_reason=None)
        .execution_options(synchronize_session=False)
    )
    return await _insert_jobs(
        db_session,
        [(take.band_id, take.version_id, JobKind.PROBE) for take in takes],
        created_by_id=created_by_id,
    )


async def queue_after_probe(*, db_session: AsyncSession, probe: Job) -> list[QueuedJob]:
    """The ANALYZE and TRANSCODE jobs that follow a successful probe."""
    assert probe.version_id is not None
    return await _insert_jobs(
        db_session,
        [(probe.band_id, probe.version_id, kind) for kind in AFTER_PROBE],
        created_by_id=probe.created_by_id,
    )


async def _insert_jobs(
    db_session: AsyncSession,
    rows: list[tuple[int, int, JobKind]],
    *,
    created_by_id: int | None,
) -> list[QueuedJob]:
    now = utcnow()
    values = [
        {
            "band_id": band_id,
            "version_id": version_id,
            "kind": kind,
            "status": JobStatus.QUEUED,
            "created_by_id": created_by_id,
            "payload": {},
            "errors": [],
            "created_at": now,
        }
        for band_id, version_id, kind in rows
    ]
    inserted = await db_session.execute(insert(Job).returning(Job.id, Job.kind), values)
    return [QueuedJob(id=job_id, kind=kind) for job_id, kind in inserted]


async def lock_version(*, db_session: AsyncSession, version_id: int) -> TrackVersion | None:
    """The version, locked until the transaction ends (a row lock on PostgreSQL; on SQLite
    the write takes the database's write lock first, so what is read next is current)."""
    if db_session.bind.dialect.name == "postgresql":
        return await db_session.scalar(
            select(TrackVersion).where(TrackVersion.id == version_id).with_for_update()
        )
    await db_session.execute(
        update(TrackVersion)
        .where(TrackVersion.id == version_id)
        .values(id=TrackVersion.id)
        .execution_options(synchronize_session=False)
    )
    return await db_session.get(TrackVersion, version_id, populate_existing=True)


async def settle(*, db_session: AsyncSession, version: TrackVersion) -> None:
    """After analyze or transcode ended (hold lock_version): READY when the newest of each
    succeeded, FAILED (with its reason) when one failed or was cancelled."""
    newest = (
        select(func.max(Job.id))
        .where(Job.version_id == version.id, Job.kind.in_(AFTER_PROBE))
        .group_by(Job.kind)
    )
    jobs = list(await db_session.scalars(select(Job).where(Job.id.in_(newest))))
    failed = [job for job in jobs if job.status in (JobStatus.FAILED, JobStatus.CANCELLED)]
    if version.status == VersionStatus.MISSING:
        return
    if failed:
        version.status = VersionStatus.FAILED
        job = failed[0]
        version.failure_reason = (
            f"{job.kind.value.capitalize()} was cancelled."
            if job.status == JobStatus.CANCELLED
            else job.message
        )
    elif len(jobs) == len(AFTER_PROBE) and all(job.status == JobStatus.SUCCEEDED for job in jobs):
        version.status = VersionStatus.READY
        version.failure_reason = None


def fail_version(version: TrackVersion, reason: str) -> None:
    if version.status != VersionStatus.MISSING:
        version.status = VersionStatus.FAILED
        version.failure_reason = reason


__all__ = [
    "AFTER_PROBE",
    "MEDIA_KINDS",
    "TakeToProcess",
    "fail_version",
    "lock_version",
    "queue_after_probe",
    "queue_probes",
    "settle",
]
