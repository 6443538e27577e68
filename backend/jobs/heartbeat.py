"""A running job's heartbeat: renewed while its actor works, stopped when the attempt
fails, so a job whose worker died or gave up is taken up again (see sweeper.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.jobs import service as jobs_service

logger = logging.getLogger("backline.jobs")


@contextlib.asynccontextmanager
async def heartbeat(
    session_factory: async_sessionmaker[AsyncSession], job_id: int
) -> AsyncIterator[None]:
    beating = asyncio.create_task(_beat(session_factory, job_id), name=f"job-{job_id}-heartbeat")
    try:
        yield
    except Exception:
        beating.cancel()
        logger.exception("job %s: attempt failed", job_id)
        with contextlib.suppress(Exception):  # the database may be what failed
            async with session_factory() as db_session:
                await jobs_service.interrupted(
                    db_session=db_session, job_id=job_id, reason="an error, logged by the worker"
                )
                await db_session.commit()
        raise
    finally:
        beating.cancel()


async def _beat(session_factory: async_sessionmaker[AsyncSession], job_id: int) -> None:
    while True:
        await asyncio.sleep(jobs_service.HEARTBEAT.total_seconds())
        try:
            async with session_factory() as db_session:
                await jobs_service.beat(db_session=db_session, job_id=job_id)
                await db_session.commit()
        except Exception:  # a missed beat is no harm; several in a row let another worker in
            logger.warning("job %s: heartbeat not recorded", job_id)
