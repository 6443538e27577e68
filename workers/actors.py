"""The actors: thin, ids in, each calls one backend service. Registered on a broker
given to them, so every app (and every test app) has its own."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware.asyncio import AsyncIO

from backend.library.scanner import run_scan
from workers import runtime


async def scan_source(job_id: int) -> None:
    await run_scan(runtime.current().scan_context(), job_id)


def register_actors(broker: dramatiq.Broker) -> None:
    if not any(isinstance(middleware, AsyncIO) for middleware in broker.middleware):
        broker.add_middleware(AsyncIO())
    # Transient failures (database restarting, ...) are retried with backoff; the job
    # itself is idempotent, so a retry redoes nothing that was done.
    dramatiq.actor(
        scan_source,
        actor_name="library.scan_source",
        queue_name="default",
        broker=broker,
        max_retries=5,
        min_backoff=1_000,
        max_backoff=60_000,
    )
