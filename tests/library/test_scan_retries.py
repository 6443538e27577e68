"""A running job whose worker died, or whose attempt failed, is taken up again: the
heartbeat stops, the sweeper (or Dramatiq's retry) sends it once more, and the scan
finishes with the same result as an uninterrupted one. A job no worker can finish ends
FAILED instead of blocking its source for ever."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select, update

from backend.core.database import utcnow
from backend.graphql.relay import from_global_id
from backend.jobs import service as jobs_service
from backend.jobs.models import Job, JobKind, JobStatus
from backend.jobs.sweeper import sweep_once
from backend.library.models import TrackVersion
from backend.library.scanner import local as local_scanner
from tests.graphql_client import gql
from tests.library.test_scan import SCAN, tree


async def _running_job(session_factory, band_id: str, source_id: str, **values) -> int:
    """A job some worker started, then (as far as anyone can tell) died on."""
    async with session_factory() as db_session:
        job = await jobs_service.create(
            db_session=db_session,
            band_id=from_global_id(band_id, expected="Band"),
            kind=JobKind.SCAN,
            source_id=from_global_id(source_id, expected="Source"),
        )
        await db_session.commit()
        started = await jobs_service.start(db_session=db_session, job_id=job.id)
        assert started is not None
        job.processed, job.skipped = 7, 3  # what the dead attempt had counted
        await db_session.execute(update(Job).where(Job.id == job.id).values(**values))
        await db_session.commit()
        return job.id


async def _ended(session_factory, job_id: int) -> Job:
    for _ in range(400):
        async with session_factory() as db_session:
            job = await db_session.get(Job, job_id)
        if job.status in jobs_service.ENDED:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end: {job.status}")


async def _versions(session_factory) -> int:
    async with session_factory() as db_session:
        return await db_session.scalar(select(func.count()).select_from(TrackVersion))


async def test_a_job_whose_worker_died_is_taken_up_again(
    client, band_with_folder, session_factory, app_and_engine
):
    app, _ = app_and_engine
    token, band_id, source_id, folder = band_with_folder
    tree(folder, ["231015/a.wav", "231015/b.wav", "notes.txt"])
    stale = utcnow() - jobs_service.STALE_AFTER - timedelta(seconds=1)
    job_id = await _running_job(session_factory, band_id, source_id, heartbeat_at=stale)

    # Its source is not blocked: asking for a scan gives this job, not a second one.
    asked = (await gql(client, SCAN, {"s": source_id}, token=token)).ok()["scanSource"]
    assert from_global_id(asked["id"], expected="Job") == job_id

    assert await sweep_once(session_factory=session_factory, queue=app.state.queue) >= 1
    job = await _ended(session_factory, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert (job.attempts, job.added, job.processed, job.skipped) == (2, 2, 3, 1)
    assert await _versions(session_factory) == 2


async def test_a_job_with_a_live_worker_is_left_alone(
    client, band_with_folder, session_factory, app_and_engine
):
    app, _ = app_and_engine
    _, band_id, source_id, _ = band_with_folder
    job_id = await _running_job(session_factory, band_id, source_id, heartbeat_at=utcnow())
    async with session_factory() as db_session:
        # A second delivery while the first worker still beats does nothing.
        assert await jobs_service.start(db_session=db_session, job_id=job_id) is None
        await db_session.commit()
    assert await sweep_once(session_factory=session_factory, queue=app.state.queue) == 0
    async with session_factory() as db_session:
        job = await db_session.get(Job, job_id)
        assert (job.status, job.attempts) == (JobStatus.RUNNING, 1)


async def test_a_failed_attempt_is_retried_and_counts_once(
    client, band_with_folder, session_factory, monkeypatch
):
    token, _, source_id, folder = band_with_folder
    tree(folder, ["231015/a.wav", "231015/b.wav"])
    real_walk = local_scanner.LocalReader.walk
    calls = []

    async def walk_that_fails_once(self, known_folders):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("the database went away")
        return await real_walk(self, known_folders)

    monkeypatch.setattr(local_scanner.LocalReader, "walk", walk_that_fails_once)
    asked = (await gql(client, SCAN, {"s": source_id}, token=token)).ok()["scanSource"]
    job = await _ended(session_factory, from_global_id(asked["id"], expected="Job"))
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert (job.attempts, job.added, job.processed) == (2, 2, 2)
    assert len(calls) == 2


async def test_a_job_no_worker_can_finish_ends_failed(
    client, band_with_folder, session_factory, app_and_engine
):
    app, _ = app_and_engine
    token, band_id, source_id, _ = band_with_folder
    job_id = await _running_job(
        session_factory,
        band_id,
        source_id,
        heartbeat_at=None,
        attempts=jobs_service.MAX_ATTEMPTS,
        message="Interrupted (an error, logged by the worker); trying again.",
    )
    await sweep_once(session_factory=session_factory, queue=app.state.queue)
    job = await _ended(session_factory, job_id)
    assert job.status == JobStatus.FAILED
    assert job.message.startswith(f"Gave up after {jobs_service.MAX_ATTEMPTS} attempts."), job
    # The source can be scanned again.
    again = (await gql(client, SCAN, {"s": source_id}, token=token)).ok()["scanSource"]
    assert from_global_id(again["id"], expected="Job") != job_id
