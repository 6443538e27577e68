"""Jobs: a row per piece of background work, which the band can follow and cancel.

Life of a job: QUEUED (row committed, message sent after) → RUNNING → SUCCEEDED, FAILED
or CANCELLED. Actors may run twice (a redelivered message); `start` lets a RUNNING job
be picked up again and refuses one that has ended, so running twice is harmless."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.bands.access import BandAccess
from backend.core.database import utcnow
from backend.core.errors import BadUserInput
from backend.jobs.models import Job, JobKind, JobStatus

ENDED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
MAX_ERRORS = 200  # kept on the row; the count in `failed` goes on past it
# A running job's worker beats every HEARTBEAT; silence for STALE_AFTER means it died.
HEARTBEAT = timedelta(seconds=10)
STALE_AFTER = timedelta(seconds=60)
MAX_ATTEMPTS = 5


async def create(
    *,
    db_session: AsyncSession,
    band_id: int,
    kind: JobKind,
    created_by_id: int | None = None,
    source_id: int | None = None,
    version_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> Job:
    """A QUEUED job row; the caller sends its message once the row is committed."""
    job = Job(
        band_id=band_id,
        kind=kind,
        status=JobStatus.QUEUED,
        created_by_id=created_by_id,
        source_id=source_id,
        version_id=version_id,
        payload=payload or {},
        errors=[],
    )
    db_session.add(job)
    await db_session.flush()
    return job


async def active_scan(*, db_session: AsyncSession, source_id: int) -> Job | None:
    """The scan of this source that is queued or running, if any."""
    return await db_session.scalar(
        select(Job).where(
            Job.source_id == source_id,
            Job.kind == JobKind.SCAN,
            Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),
        )
    )


async def start(*, db_session: AsyncSession, job_id: int) -> Job | None:
    """Mark a job RUNNING for the actor that picked it up; None when there is nothing to
    do (it ended, was cancelled before it started, no longer exists, or another worker is
    running it now). A RUNNING job whose heartbeat stopped is taken up again."""
    job = await db_session.get(Job, job_id, with_for_update=True)
    if job is None or job.status in ENDED:
        return None
    now = utcnow()
    if job.status == JobStatus.RUNNING and _beating(job, now):
        return None
    if job.cancel_requested_at is not None:
        finish(job, JobStatus.CANCELLED, message="Cancelled before it started.")
        return None
    if job.attempts >= MAX_ATTEMPTS:
        message = f"Gave up after {job.attempts} attempts. {_last(job)}"
        finish(job, JobStatus.FAILED, message=message)
        return None
    if job.status == JobStatus.RUNNING:
        # Taken up again: this attempt counts what it walks afresh. What earlier attempts
        # added or updated is done and stays counted; a re-run finds it unchanged.
        job.processed, job.total, job.progress = 0, None, 0.0
        job.skipped, job.failed, job.errors = 0, 0, []
    job.status = JobStatus.RUNNING
    job.started_at = job.started_at or now
    job.heartbeat_at = now
    job.attempts += 1
    return job


async def beat(*, db_session: AsyncSession, job_id: int) -> None:
    """The worker is still on it."""
    await db_session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
        .values(heartbeat_at=utcnow())
    )


async def interrupted(*, db_session: AsyncSession, job_id: int, reason: str) -> None:
    """An attempt failed and will be retried: stop the heartbeat, so the retry (or the
    sweeper) may take the job up at once, and say why."""
    await db_session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
        .values(heartbeat_at=None, message=f"Interrupted ({reason}); trying again.")
    )


async def set_progress(*, db_session: AsyncSession, job_id: int, progress: float) -> None:
    """A running job's progress (0..1), written without loading the row."""
    await db_session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
        .values(progress=progress)
    )


def _beating(job: Job, now: datetime) -> bool:
    return job.heartbeat_at is not None and job.heartbeat_at > now - STALE_AFTER


def _last(job: Job) -> str:
    return job.message or "The worker stopped each time."


def record_error(job: Job, *, path: str | None, message: str) -> None:
    """One item failed; the job goes on."""
    job.failed += 1
    if len(job.errors) < MAX_ERRORS:
        # A new list, so SQLAlchemy sees the JSON column change.
        job.errors = [*job.errors, {"path": path, "message": message}]


def finish(job: Job, status: JobStatus, *, message: str | None = None) -> None:
    job.status = status
    job.finished_at = utcnow()
    if status == JobStatus.SUCCEEDED:
        job.progress = 1.0
    if message is not None:
        job.message = message


async def cancel_requested(*, db_session: AsyncSession, job_id: int) -> bool:
    requested = await db_session.scalar(select(Job.cancel_requested_at).where(Job.id == job_id))
    return requested is not None


async def request_cancel(*, db_session: AsyncSession, access: BandAccess, job_id: int) -> Job:
    """Cancel a job (members): a queued one at once, a running one at its next item.
    What it already did stays done."""
    job = await access.fetch(db_session=db_session, model=Job, object_id=job_id, what="job")
    if job.status in ENDED:
        raise BadUserInput(f"The job has ended ({job.status.value.lower()}).", field="id")
    await _ask_to_cancel(db_session=db_session, job=job)
    return job


async def cancel_unattended(*, db_session: AsyncSession, job_id: int) -> Job | None:
    """Cancel a job for a caller with no signed-in user (`backline scan` interrupted), as
    `request_cancel` does; None when there is no such job, the job as it is if it ended."""
    job = await db_session.get(Job, job_id)
    if job is not None and job.status not in ENDED:
        await _ask_to_cancel(db_session=db_session, job=job)
    return job


async def _ask_to_cancel(*, db_session: AsyncSession, job: Job) -> None:
    job.cancel_requested_at = job.cancel_requested_at or utcnow()
    if job.status == JobStatus.QUEUED:
        finish(job, JobStatus.CANCELLED, message="Cancelled before it started.")
    await db_session.flush()


async def mark_enqueued(*, db_session: AsyncSession, job_id: int) -> None:
    await mark_enqueued_many(db_session=db_session, job_ids=[job_id])


async def mark_enqueued_many(*, db_session: AsyncSession, job_ids: list[int]) -> None:
    for start in range(0, len(job_ids), 1000):  # bound the IN list
        await db_session.execute(
            update(Job)
            .where(Job.id.in_(job_ids[start : start + 1000]))
            .values(enqueued_at=utcnow())
            .execution_options(synchronize_session=False)
        )


async def stranded(
    *, db_session: AsyncSession, unsent_after: timedelta, resend_after: timedelta
) -> list[Job]:
    """Queued jobs whose message was never sent (a crash between commit and send) or was
    sent so long ago that it must have been lost (a broker that forgot it), and running
    jobs whose worker fell silent (it died, or the attempt failed and may not be retried)."""
    now = utcnow()
    return list(
        await db_session.scalars(
            select(Job)
            .where(
                or_(
                    (Job.status == JobStatus.QUEUED)
                    & or_(
                        (Job.enqueued_at.is_(None)) & (Job.created_at < now - unsent_after),
                        Job.enqueued_at < now - resend_after,
                    ),
                    (Job.status == JobStatus.RUNNING)
                    & or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < now - STALE_AFTER)
                    # once a minute at most, while it waits in a busy queue
                    & or_(Job.enqueued_at.is_(None), Job.enqueued_at < now - STALE_AFTER),
                ),
            )
            .order_by(Job.id)
            .limit(500)
        )
    )


_SNAPSHOT_COLUMNS = (
    "id",
    "band_id",
    "version_id",
    "progress",
    "processed",
    "total",
    "added",
    "updated",
    "skipped",
    "failed",
    "message",
    "errors",
)
_SNAPSHOT_TIMES = ("created_at", "started_at", "finished_at")


def snapshot(job: Job) -> dict[str, Any]:
    """The job as events carry it: JSON, enough to show it without reading the database
    (a scan's progress may go to thousands of subscribers)."""
    data: dict[str, Any] = {name: getattr(job, name) for name in _SNAPSHOT_COLUMNS}
    data.update(kind=job.kind.value, status=job.status.value, finished=job.status in ENDED)
    for name in _SNAPSHOT_TIMES:
        value = getattr(job, name)
        data[name] = value.isoformat() if value else None
    return data


def from_snapshot(data: dict[str, Any]) -> Job:
    """A detached Job equal to the one the snapshot was taken of."""
    values = {name: data.get(name) for name in _SNAPSHOT_COLUMNS}
    times = {
        name: datetime.fromisoformat(data[name]) if data[name] else None for name in _SNAPSHOT_TIMES
    }
    return Job(**values, **times, kind=JobKind(data["kind"]), status=JobStatus(data["status"]))
