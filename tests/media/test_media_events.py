"""Media work as the band's app sees it live: each media job on bandEvents (JobUpdated)
and jobProgress, and VersionUpdated as the take moves to READY; cancelling a transcode;
a job delivered twice; odd recordings settle without crashing a worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from backend.graphql.relay import parse_global_id
from backend.jobs.models import Job, JobKind, JobStatus
from backend.jobs.queue import JobQueue
from backend.library.models import TrackVersion, VersionStatus
from backend.media import work
from backend.media.models import Analysis
from tests.factories import add_take
from tests.graphql_client import gql
from tests.live_server import connect, next_message, serve, subscribe
from tests.media.test_pipeline import click_take, fetch, upload, wait_settled
from tests.media_fixtures import tone, write_wav

BAND = """subscription($id: ID!) { bandEvents(bandId: $id) {
  __typename
  ... on VersionAdded { version { id status } }
  ... on VersionUpdated { version { id status analysis { bpm } streams { mp3 } } }
  ... on JobUpdated { job { kind status progress version { id } } }
} }"""
PROGRESS = """subscription($id: ID!) { jobProgress(jobId: $id) { kind status progress } }"""
JOBS = (
    """query($b: ID!) { band(id: $b) { jobs(first: 20) { nodes { id kind status message } } } }"""
)


@pytest.fixture
async def server_url(app_and_engine, engine) -> AsyncIterator[str]:
    app, _ = app_and_engine
    async with serve(app) as url:
        yield url


async def test_media_jobs_and_the_ready_take_arrive_on_band_events(
    client, member, server_url, tmp_path
):
    token, band_id = member
    socket = await connect(server_url, token)
    await subscribe(socket, "band", BAND, {"id": band_id})
    await asyncio.sleep(0.2)
    body = await upload(client, token, band_id, "groove.wav", click_take(tmp_path / "g.wav"))
    version_id = body["data"]["uploadVersion"]["id"]

    seen: list[dict] = []

    def finished_kinds() -> set[str]:
        return {
            event["job"]["kind"]
            for event in seen
            if event["__typename"] == "JobUpdated" and event["job"]["status"] == "SUCCEEDED"
        }

    # A VersionUpdated reads the take when it is delivered, so READY may show up before
    # the last job's JobUpdated: read until both have come.
    while not (len(finished_kinds()) == 3 and any(_ready(event) for event in seen)):
        message = await next_message(socket, wait=60)
        seen.append(message["payload"]["data"]["bandEvents"])
    await socket.close()
    # The take is read when the event is delivered: by then the probe may have begun.
    assert seen[0]["__typename"] == "VersionAdded"
    assert seen[0]["version"]["id"] == version_id
    assert seen[0]["version"]["status"] in {"PENDING", "PROCESSING"}
    assert finished_kinds() == {"PROBE", "ANALYZE", "TRANSCODE"}
    assert all(
        event["job"]["version"] == {"id": version_id}
        for event in seen
        if event["__typename"] == "JobUpdated"
    )
    statuses = [e["version"]["status"] for e in seen if e["__typename"] == "VersionUpdated"]
    assert "PROCESSING" in statuses and "READY" in statuses
    ready = next(event for event in seen if _ready(event))
    assert abs(ready["version"]["analysis"]["bpm"] - 120) <= 1
    # Signed links work in an event too (its selection is executed once for everyone).
    mp3 = await fetch(client, ready["version"]["streams"]["mp3"])
    assert mp3.status_code == 200 and mp3.headers["content-type"] == "audio/mpeg"


def _ready(event: dict) -> bool:
    return event["__typename"] == "VersionUpdated" and event["version"]["status"] == "READY"


async def test_a_transcode_can_be_cancelled_and_the_take_says_why(
    client, member, session_factory, tmp_path
):
    token, band_id = member
    # Long enough that the transcode is still running when the cancel arrives.
    write_wav(tmp_path / "long.wav", tone(440, -20, 1800, 8000), 8000)
    body = await upload(client, token, band_id, "long.wav", (tmp_path / "long.wav").read_bytes())
    version_id = body["data"]["uploadVersion"]["id"]
    transcode_id = None
    for _ in range(600):
        jobs = (await gql(client, JOBS, {"b": band_id}, token=token)).ok()["band"]["jobs"]["nodes"]
        running = [j for j in jobs if j["kind"] == "TRANSCODE" and j["status"] == "RUNNING"]
        if running:
            transcode_id = running[0]["id"]
            break
        await asyncio.sleep(0.05)
    assert transcode_id, jobs
    cancelled = await gql(
        client, "mutation($j: ID!) { cancelJob(id: $j) { id } }", {"j": transcode_id}, token=token
    )
    cancelled.ok()
    version = await wait_settled(client, token, version_id, seconds=120)
    jobs = (await gql(client, JOBS, {"b": band_id}, token=token)).ok()["band"]["jobs"]["nodes"]
    transcode = next(job for job in jobs if job["id"] == transcode_id)
    assert transcode["status"] == "CANCELLED"
    assert version["status"] == "FAILED"
    assert "cancel" in version["failureReason"].lower()


async def test_a_media_job_delivered_twice_does_its_work_once(
    client, member, session_factory, app_and_engine, settle_media, tmp_path
):
    app, _ = app_and_engine
    token, band_id = member
    body = await upload(client, token, band_id, "x.wav", click_take(tmp_path / "x.wav", seconds=3))
    version_id = body["data"]["uploadVersion"]["id"]
    await wait_settled(client, token, version_id)
    await settle_media()
    async with session_factory() as db:
        jobs = list(await db.scalars(select(Job).order_by(Job.id)))
        analysed = await db.scalar(select(Analysis.analyzed_at))
    for job in jobs:  # as a redelivered message would
        app.state.queue.send(job)
    await settle_media()  # every redelivered message has been handled
    async with session_factory() as db:
        again = list(await db.scalars(select(Job).order_by(Job.id)))
        assert await db.scalar(select(Analysis.analyzed_at)) == analysed  # not analysed again
    assert [(job.id, job.status, job.finished_at) for job in again] == [
        (job.id, job.status, job.finished_at) for job in jobs
    ]
    assert sorted(job.kind for job in again) == [JobKind.ANALYZE, JobKind.PROBE, JobKind.TRANSCODE]


ODD = {
    "silence": (np.zeros((44100 * 3, 2), dtype=np.float32), 44100),
    "one_second_mono": (tone(440, -12, 1.0, 44100), 44100),
    "8_khz": (tone(440, -12, 4.0, 8000), 8000),
    "96_khz": (tone(440, -12, 2.0, 96000), 96000),
    "six_channels": (np.tile(tone(440, -12, 2.0).reshape(-1, 1), (1, 6)), 48000),
    "clipping": (np.clip(tone(440, 6, 3.0, 44100), -1, 1), 44100),
}


@pytest.mark.parametrize("name", sorted(ODD))
async def test_odd_recordings_settle_with_sane_results(client, member, tmp_path, name):
    token, band_id = member
    samples, rate = ODD[name]
    write_wav(tmp_path / f"{name}.wav", samples, rate)
    body = await upload(
        client, token, band_id, f"{name}.wav", (tmp_path / f"{name}.wav").read_bytes()
    )
    version = await wait_settled(client, token, body["data"]["uploadVersion"]["id"])
    assert version["status"] == "READY", version["failureReason"]
    analysis = version["analysis"]
    if name == "silence":
        assert analysis["loudnessLufs"] is None and analysis["bpm"] is None
    else:
        assert analysis["loudnessLufs"] is not None
    assert version["waveform"]["length"] > 0
    assert version["streams"]["hls"] and version["streams"]["mp3"]


async def test_jobs_progress_follows_a_transcode_to_its_end(client, member, server_url, tmp_path):
    token, band_id = member
    write_wav(tmp_path / "t.wav", tone(220, -20, 120, 22050), 22050)
    await upload(client, token, band_id, "t.wav", (tmp_path / "t.wav").read_bytes())
    transcode_id = None
    for _ in range(600):
        jobs = (await gql(client, JOBS, {"b": band_id}, token=token)).ok()["band"]["jobs"]["nodes"]
        found = [j for j in jobs if j["kind"] == "TRANSCODE"]
        if found:
            transcode_id = found[0]["id"]
            break
        await asyncio.sleep(0.02)
    assert transcode_id
    socket = await connect(server_url, token)
    await subscribe(socket, "job", PROGRESS, {"id": transcode_id})
    updates = []
    while True:
        message = await next_message(socket, wait=60)
        if message["type"] == "complete":
            break
        updates.append(message["payload"]["data"]["jobProgress"])
    await socket.close()
    assert updates[-1]["status"] == "SUCCEEDED" and updates[-1]["progress"] == 1.0
    progress = [update["progress"] for update in updates]
    assert progress == sorted(progress)


async def test_a_take_whose_job_no_worker_could_finish_fails_instead_of_waiting(
    client, member, session_factory, app_and_engine
):
    app, _ = app_and_engine
    _, band_id = member
    version = await add_take(session_factory, band_id=band_id, title="Stuck")
    async with session_factory() as db:
        job = Job(
            band_id=parse_global_id(band_id)[1],
            kind=JobKind.PROBE,
            status=JobStatus.RUNNING,
            version_id=version.id,
            attempts=5,
            message="Interrupted (an error, logged by the worker); trying again.",
            payload={},
            errors=[],
        )
        db.add(job)
        await db.get(TrackVersion, version.id)
        await db.commit()
    ctx = work.MediaContext(
        session_factory=session_factory,
        settings=app.state.settings,
        publish=app.state.bus.publish,
        storage=app.state.storage,
        queue=JobQueue(StubBroker()),
    )
    await work.run_probe(ctx, job.id)
    async with session_factory() as db:
        ended = await db.get(Job, job.id)
        take = await db.get(TrackVersion, version.id)
    assert ended.status == JobStatus.FAILED
    assert take.status == VersionStatus.FAILED
    assert take.failure_reason.startswith("Gave up after 5 attempts")
