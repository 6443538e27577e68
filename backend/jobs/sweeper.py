"""Re-sends the messages of jobs left QUEUED: committed but never sent (a crash between
commit and send, the broker down), or sent long ago and lost. Actors are idempotent, so
a job that was only slow and runs twice costs time, not correctness."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.jobs import service as jobs_service
from backend.jobs.queue import JobQueue

logger = logging.getLogger("backline.jobs")

UNSENT_AFTER = timedelta(seconds=10)
RESEND_AFTER = timedelta(minutes=15)


async def sweep_once(*, session_factory: async_sessionmaker[AsyncSession], queue: JobQueue) -> int:
    async with session_factory() as db_session:
        jobs = await jobs_service.stranded(
            db_session=db_session, unsent_after=UNSENT_AFTER, resend_after=RESEND_AFTER
        )
    if jobs:
        logger.info("re-sending %d stranded job(s): %s", len(jobs), [job.id for job in jobs])
        await queue.send_committed(jobs, session_factory=session_factory)
    return len(jobs)


async def sweep_forever(
    *, session_factory: async_sessionmaker[AsyncSession], queue: JobQueue, every: float = 15.0
) -> None:
    while True:
        try:
            await sweep_once(session_factory=session_factory, queue=queue)
        except Exception:  # the database may be restarting; try again next round
            logger.exception("job sweep failed")
        await asyncio.sleep(every)
