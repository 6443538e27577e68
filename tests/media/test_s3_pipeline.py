"""The media pipeline on S3 storage (moto in server mode on loopback): a large take
uploaded by the browser straight to S3 in parts, resumed after a break, completed into
a version, probed, analysed and transcoded by the same job code the actors run, and
streamed back through signed links that read from the bucket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from backend.app import create_app
from backend.core.settings import Settings
from backend.jobs.models import Job, JobKind, JobStatus
from backend.jobs.queue import JobQueue
from backend.media import uploads, work
from backend.media.storage.base import MIN_PART_SIZE
from tests.graphql_client import gql, register
from tests.media.conftest import fresh_bucket, pending_uploads
from tests.media_fixtures import clicks, stereo, write_wav
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY

CREATE = """mutation($b: ID!, $name: String!, $size: Float!) {
  createUpload(bandId: $b, filename: $name, sizeBytes: $size) {
    id partSize partCount uploadedPartNumbers parts { partNumber url } } }"""
STATUS = "query($u: ID!) { uploadStatus(uploadId: $u) { partCount uploadedPartNumbers } }"
PART_URLS = """mutation($u: ID!, $n: [Int!]!) { uploadPartUrls(uploadId: $u, partNumbers: $n) {
  uploadedPartNumbers parts { partNumber url } } }"""
COMPLETE = """mutation($u: ID!) { completeUpload(uploadId: $u) {
  id status originalFilename sizeBytes track { title } } }"""
ABORT = "mutation($u: ID!) { abortUpload(uploadId: $u) }"
VERSION = """query($id: ID!) { node(id: $id) { ... on TrackVersion { status failureReason
  durationMs analysis { bpm } waveform { length url } streams { original mp3 hls } } } }"""


@pytest.fixture
async def s3_app(database_url, engine, s3_endpoint_url, tmp_path) -> AsyncIterator[Any]:
    """An api on S3 storage, on the suite's database; no workers of its own (the test
    runs the jobs, as the actors would)."""
    async with fresh_bucket(s3_endpoint_url) as endpoint:
        settings = Settings(
            database_url=database_url,
            data_dir=tmp_path / "data",
            secret_key="test-secret-key-that-is-long-enough-for-hs256",
            worker_threads=0,
            watch_sources=False,
            storage_backend="s3",
            s3_endpoint_url=s3_endpoint_url,
            s3_bucket=endpoint.bucket,
            s3_region=REGION,
            s3_access_key=ACCESS_KEY,
            s3_secret_key=SECRET_KEY,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            yield app, endpoint


@pytest.fixture
async def s3_client(s3_app) -> AsyncIterator[httpx.AsyncClient]:
    app, _ = s3_app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://backline.test") as client:
        yield client


async def member(client: httpx.AsyncClient, handle: str = "drummer") -> tuple[str, str]:
    token, _ = await register(client, handle)
    created = await gql(
        client, 'mutation { createBand(input: {name: "Fuzz"}) { id } }', token=token
    )
    return token, created.ok()["createBand"]["id"]


async def run_jobs(app: Any) -> None:
    """Run every queued media job the way the actors do, until none is left."""
    broker = StubBroker()
    broker.declare_queue("media")
    ctx = work.MediaContext(
        session_factory=app.state.session_factory,
        settings=app.state.settings,
        publish=app.state.bus.publish,
        storage=app.state.storage,
        queue=JobQueue(broker),
    )
    runners = {
        JobKind.PROBE: work.run_probe,
        JobKind.ANALYZE: work.run_analyze,
        JobKind.TRANSCODE: work.run_transcode,
    }
    while True:
        async with app.state.session_factory() as db:
            queued = list(
                await db.scalars(select(Job).where(Job.status == JobStatus.QUEUED).order_by(Job.id))
            )
        if not queued:
            return
        for job in queued:
            await runners[job.kind](ctx, job.id)


async def fetch(client: httpx.AsyncClient, url: str, **headers: str) -> httpx.Response:
    parts = urlsplit(url)
    return await client.get(f"{parts.path}?{parts.query}", headers=headers)


async def test_a_large_take_uploaded_in_parts_resumes_and_plays_from_s3(
    s3_app, s3_client, tmp_path, monkeypatch
):
    app, endpoint = s3_app
    monkeypatch.setattr(uploads, "PART_SIZE", MIN_PART_SIZE)
    token, band_id = await member(s3_client)
    write_wav(tmp_path / "set.wav", stereo(clicks(145, 75)), 44100)  # ~13 MB: 3 parts
    data = (tmp_path / "set.wav").read_bytes()

    created = await gql(
        s3_client, CREATE, {"b": band_id, "name": "Live set.wav", "size": len(data)}, token=token
    )
    upload = created.ok()["createUpload"]
    assert upload["partCount"] == 3 and upload["partSize"] == MIN_PART_SIZE
    urls = {part["partNumber"]: part["url"] for part in upload["parts"]}
    async with httpx.AsyncClient() as browser:
        first = await browser.put(urls[1], content=data[:MIN_PART_SIZE])
        assert first.status_code == 200
        # The connection broke here; later the app asks what arrived and for fresh links.
        status = await gql(s3_client, STATUS, {"u": upload["id"]}, token=token)
        assert status.ok()["uploadStatus"]["uploadedPartNumbers"] == [1]
        fresh = await gql(s3_client, PART_URLS, {"u": upload["id"], "n": [2, 3]}, token=token)
        for part in fresh.ok()["uploadPartUrls"]["parts"]:
            start = (part["partNumber"] - 1) * MIN_PART_SIZE
            body = data[start : start + MIN_PART_SIZE]
            assert (await browser.put(part["url"], content=body)).status_code == 200

    completed = await gql(s3_client, COMPLETE, {"u": upload["id"]}, token=token)
    version = completed.ok()["completeUpload"]
    assert version["sizeBytes"] == len(data)
    assert version["track"]["title"] == "Live set"
    assert await pending_uploads(endpoint) == []

    await run_jobs(app)
    done = (await gql(s3_client, VERSION, {"id": version["id"]}, token=token)).ok()["node"]
    assert done["status"] == "READY", done["failureReason"]
    assert abs(done["durationMs"] - 75_000) <= 30
    assert abs(done["analysis"]["bpm"] - 145) <= 1
    streams = done["streams"]
    original = await fetch(s3_client, streams["original"], Range=f"bytes={len(data) - 10}-")
    assert original.status_code == 206 and original.content == data[-10:]
    assert (await fetch(s3_client, streams["mp3"])).status_code == 200
    playlist = await fetch(s3_client, streams["hls"])
    segments = [line for line in playlist.text.splitlines() if line and not line.startswith("#")]
    assert len(segments) >= 12  # 75 s in ~6 s segments
    segment = await fetch(s3_client, urljoin(streams["hls"], segments[-1]))
    assert segment.status_code == 200 and segment.content
    assert (await fetch(s3_client, done["waveform"]["url"])).status_code == 200


async def test_direct_uploads_refuse_what_they_must_and_leave_nothing(s3_app, s3_client, tmp_path):
    app, endpoint = s3_app
    token, band_id = await member(s3_client)
    too_big = await gql(
        s3_client,
        CREATE,
        {"b": band_id, "name": "huge.wav", "size": app.state.settings.max_upload_bytes + 1},
        token=token,
    )
    assert too_big.errors[0]["extensions"]["reason"] == "TOO_LARGE"

    # Not audio: refused at completion, the object removed.
    words = b"not a recording\n" * 10
    created = await gql(
        s3_client, CREATE, {"b": band_id, "name": "notes.wav", "size": len(words)}, token=token
    )
    upload = created.ok()["createUpload"]
    async with httpx.AsyncClient() as browser:
        await browser.put(upload["parts"][0]["url"], content=words)
    refused = await gql(s3_client, COMPLETE, {"u": upload["id"]}, token=token)
    assert refused.codes == ["BAD_USER_INPUT"]
    assert [key async for key in app.state.storage.list_keys("uploads")] == []

    # Nobody else may finish or drop it; its owner may abort it.
    created = await gql(
        s3_client, CREATE, {"b": band_id, "name": "take.wav", "size": 1000}, token=token
    )
    upload_id = created.ok()["createUpload"]["id"]
    other, _ = await register(s3_client, "stranger")
    assert (await gql(s3_client, COMPLETE, {"u": upload_id}, token=other)).codes == ["NOT_FOUND"]
    assert (await gql(s3_client, ABORT, {"u": upload_id}, token=other)).codes == ["NOT_FOUND"]
    assert (await gql(s3_client, ABORT, {"u": upload_id}, token=token)).ok()["abortUpload"]
    assert await pending_uploads(endpoint) == []


async def test_direct_uploads_need_s3_storage(client, tmp_path: Path):
    token, band_id = await member(client)
    result = await gql(client, CREATE, {"b": band_id, "name": "a.wav", "size": 10}, token=token)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["reason"] == "NOT_SUPPORTED"
