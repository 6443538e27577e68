"""Sending a job's message to the broker once its row is committed (the outbox).

Messages name actors by their dotted names, so the api never imports the workers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.errors import ServiceUnavailable
from backend.jobs import service as jobs_service
from backend.jobs.models import JobKind

logger = logging.getLogger("backline.jobs")

ACTOR_BY_KIND = {
    JobKind.SCAN: "library.scan_source",
    JobKind.PROBE: "media.probe",
    JobKind.ANALYZE: "media.analyze",
    JobKind.TRANSCODE: "media.transcode",
}
QUEUE_BY_ACTOR = {
    "library.scan_source": "default",
    "media.probe": "media",
    "media.analyze": "media",
    "media.transcode": "media",
}


class JobRef(Protocol):
    """What sending needs of a job: a Job row, or a QueuedJob from a bulk insert."""

    @property
    def id(self) -> int: ...

    @property
    def kind(self) -> JobKind: ...


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A job just inserted in bulk, as much of it as sending needs (thousands at once
    from a first scan: no ORM object each)."""

    id: int
    kind: JobKind


class JobQueue:
    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    async def check_available(self) -> None:
        """ensure_available, off the event loop."""
        await asyncio.to_thread(self.ensure_available)

    def ensure_available(self) -> None:
        """Refuse work up front (SERVICE_UNAVAILABLE, nothing written) when the broker
        cannot take messages."""
        if isinstance(self.broker, RedisBroker):
            try:
                self.broker.client.ping()
            except Exception as error:  # any connection failure means "not now"
                raise ServiceUnavailable(
                    "The job queue (Redis) is not reachable; try again in a moment."
                ) from error

    def send(self, job: JobRef) -> None:
        actor_name = ACTOR_BY_KIND[job.kind]
        message = dramatiq.Message(
            queue_name=QUEUE_BY_ACTOR[actor_name],
            actor_name=actor_name,
            args=(job.id,),
            kwargs={},
            options={},
        )
        self.broker.enqueue(message)

    async def send_committed(
        self, jobs: Sequence[JobRef], *, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        """Send the messages of committed jobs and note it, in one statement for all (a
        first scan sends thousands); a failure leaves the unsent ones for the sweeper
        rather than failing the request that made them."""
        if not jobs:
            return
        # Redis calls block: off the event loop, so a slow broker stalls no request.
        sent = await asyncio.to_thread(self._send_each, jobs)
        if not sent:
            return
        async with session_factory() as db_session:
            await jobs_service.mark_enqueued_many(db_session=db_session, job_ids=sent)
            await db_session.commit()

    def _send_each(self, jobs: Sequence[JobRef]) -> list[int]:
        sent = []
        for job in jobs:
            try:
                self.send(job)
            except Exception:  # the sweeper sends it again; the request has succeeded
                logger.warning("job %s: message not sent; the sweeper will retry", job.id)
                continue
            sent.append(job.id)
        return sent
