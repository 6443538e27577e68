"""A job's events: its state on `job:{id}` (jobProgress) and on its band's channel
(bandEvents' JobUpdated), as one snapshot so subscribers need not read the database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from backend.jobs import service as jobs_service
from backend.jobs.models import Job

Publish = Callable[[str, dict[str, Any]], Awaitable[None]]


async def publish_job(publish: Publish, job: Job) -> None:
    snapshot = jobs_service.snapshot(job)
    await publish(f"job:{job.id}", snapshot)
    await publish(f"band:{job.band_id}", {"type": "JobUpdated", "job": snapshot})


async def publish_version_updated(publish: Publish, *, band_id: int, version_id: int) -> None:
    await publish(f"band:{band_id}", {"type": "VersionUpdated", "version_id": version_id})
