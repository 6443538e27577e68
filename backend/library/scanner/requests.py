"""Asking for a scan: one per source at a time, the row committed before its message is
sent. The same path serves the `scanSource` mutation, the folder watcher and the CLI."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.jobs import service as jobs_service
from backend.jobs.models import Job, JobKind
from backend.jobs.queue import JobQueue


async def request_scan(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    queue: JobQueue,
    band_id: int,
    source_id: int,
    requested_by_id: int | None = None,
) -> Job:
    """The scan of the source that is queued or running, else a new one. Raises
    ServiceUnavailable, having written nothing, when the broker is down."""
    await queue.check_available()
    try:
        async with session_factory() as db_session:
            running = await jobs_service.active_scan(db_session=db_session, source_id=source_id)
            if running is not None:
                return running
            job = await jobs_service.create(
                db_session=db_session,
                band_id=band_id,
                kind=JobKind.SCAN,
                created_by_id=requested_by_id,
                source_id=source_id,
            )
            await db_session.commit()
    except IntegrityError:
        # Another request started a scan of this source a moment ago: that one it is.
        async with session_factory() as db_session:
            running = await jobs_service.active_scan(db_session=db_session, source_id=source_id)
        if running is None:  # it has already ended; ask again
            return await request_scan(
                session_factory=session_factory,
                queue=queue,
                band_id=band_id,
                source_id=source_id,
                requested_by_id=requested_by_id,
            )
        return running
    await queue.send_committed([job], session_factory=session_factory)
    return job
