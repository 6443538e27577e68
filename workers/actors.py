"""The actors: thin, ids in, each calls one backend service. Registered on a broker
given to them, so every app (and every test app) has its own."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import dramatiq
from dramatiq.middleware.asyncio import AsyncIO

from backend.jobs.queue import QUEUE_BY_ACTOR
from backend.library.scanner import run_scan
from backend.media import work as media_work
from workers import runtime


async def scan_source(job_id: int) -> None:
    await run_scan(runtime.current().scan_context(), job_id)


async def probe(job_id: int) -> None:
    await media_work.run_probe(runtime.current().media_context(), job_id)


async def analyze(job_id: int) -> None:
    await media_work.run_analyze(runtime.current().media_context(), job_id)


async def transcode(job_id: int) -> None:
    await media_work.run_transcode(runtime.current().media_context(), job_id)


ACTORS: dict[str, Callable[[int], Coroutine[Any, Any, None]]] = {
    "library.scan_source": scan_source,
    "media.probe": probe,
    "media.analyze": analyze,
    "media.transcode": transcode,
}
# A first scan queues a probe per take, thousands at once: media work has a queue of its
# own and a lower priority, so a scan asked for meanwhile does not wait behind it.
PRIORITY = {"library.scan_source": 0, "media.probe": 10, "media.analyze": 20, "media.transcode": 20}


def register_actors(broker: dramatiq.Broker) -> None:
    if not any(isinstance(middleware, AsyncIO) for middleware in broker.middleware):
        broker.add_middleware(AsyncIO())
    # Transient failures (database restarting, a share down, ...) are retried with
    # backoff; every job is idempotent, so a retry redoes nothing that was done. A
    # 3-hour recording takes minutes to transcode: the time limit leaves room for it.
    for name, function in ACTORS.items():
        dramatiq.actor(
            function,
            actor_name=name,
            queue_name=QUEUE_BY_ACTOR[name],
            priority=PRIORITY[name],
            broker=broker,
            max_retries=5,
            min_backoff=1_000,
            max_backoff=60_000,
            time_limit=4 * 60 * 60 * 1000,
        )
