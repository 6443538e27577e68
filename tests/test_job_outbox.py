"""Jobs are an outbox: the row commits first, its message is sent after. What that must
survive: Redis down when asked (SERVICE_UNAVAILABLE, nothing written), a crash between
commit and send or a failed send (the sweeper sends it later), a message the broker lost,
and an actor that runs twice (the second run changes nothing)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from backend.app import create_app
from backend.bands.models import Band
from backend.core.database import utcnow
from backend.core.errors import ServiceUnavailable
from backend.core.settings import Settings
from backend.graphql.relay import parse_global_id
from backend.jobs import service as jobs_service
from backend.jobs import sweeper
from backend.jobs.models import Job, JobKind, JobStatus
from backend.jobs.queue import JobQueue
from backend.jobs.sweeper import RESEND_AFTER, UNSENT_AFTER, sweep_once
from backend.library.models import RehearsalSession, Source, SourceKind, Track, TrackVersion
from backend.library.scanner import ScanContext, run_scan
from backend.library.scanner import scan as scan_module
from tests import services
from tests.audio_fixtures import write_wav
from tests.factories import cheap_password_hashing, database_snapshot
from tests.graphql_client import gql, register
from tests.live_server import free_port

SECRET = "test-secret-key-that-is-long-enough-for-hs256"
WAIT = 20.0  # the longest any job here may take
ADD_SOURCE = """mutation($b: ID!, $r: String!, $n: String!) {
  addSource(input: {bandId: $b, kind: LOCAL_FOLDER, name: $n, root: $r}) { id } }"""
SCAN = "mutation($s: ID!) { scanSource(sourceId: $s) { id status } }"
TREE = [
    "240301/groove/take1.wav",
    "240301/groove/take2.wav",
    "240301/ballad/take1.wav",
    "240301/jam.wav",
    "240308/groove/take1.wav",
    "loose idea.wav",
]


def _tree(folder: Path, files: list[str] = TREE) -> Path:
    for index, relative in enumerate(files):
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, seconds=0.05, tone_hz=180 + index * 23)
    (folder / "240301" / "setlist.txt").write_text("groove, ballad")  # skipped, never opened
    return folder


async def _band_with_job(session_factory, folder: Path) -> tuple[int, int]:
    """A band, a source on ``folder`` and its scan job, committed and never sent."""
    async with session_factory() as db_session:
        band = Band(slug=f"band-{uuid.uuid4().hex[:8]}", name="Outbox")
        db_session.add(band)
        await db_session.flush()
        source = Source(band_id=band.id, kind=SourceKind.LOCAL_FOLDER, name="n", root=str(folder))
        db_session.add(source)
        await db_session.flush()
        job = await jobs_service.create(
            db_session=db_session, band_id=band.id, kind=JobKind.SCAN, source_id=source.id
        )
        await db_session.commit()
        return band.id, job.id


async def _job(session_factory, job_id: int) -> Job:
    async with session_factory() as db_session:
        job = await db_session.get(Job, job_id)
        assert job is not None
        return job


async def _ended(session_factory, job_id: int) -> Job:
    deadline = time.monotonic() + WAIT
    while (job := await _job(session_factory, job_id)).status not in jobs_service.ENDED:
        assert time.monotonic() < deadline, f"job {job_id} still {job.status} after {WAIT} s"
        await asyncio.sleep(0.05)
    return job


async def _age(session_factory, job_id: int, **ago: timedelta) -> None:
    """Move the job's times into the past, as if that much time had gone by."""
    now = utcnow()
    async with session_factory() as db_session:
        await db_session.execute(
            update(Job).where(Job.id == job_id).values({name: now - d for name, d in ago.items()})
        )
        await db_session.commit()


async def _job_count(session_factory) -> int:
    async with session_factory() as db_session:
        return await db_session.scalar(select(func.count(Job.id)))


async def _library(session_factory, band_id: int) -> list[tuple[Any, ...]]:
    """The band's takes as a person sees them: (path, track, number, session, label)."""
    async with session_factory() as db_session:
        rows = await db_session.execute(
            select(
                TrackVersion.path,
                Track.normalized_title,
                TrackVersion.number,
                RehearsalSession.date,
                TrackVersion.label,
                TrackVersion.status,
            )
            .join(Track, Track.id == TrackVersion.track_id)
            .outerjoin(RehearsalSession, RehearsalSession.id == TrackVersion.session_id)
            .where(TrackVersion.band_id == band_id)
            .order_by(TrackVersion.path)
        )
        return [tuple(row) for row in rows]


@dataclass
class Sends:
    """What the app's queue sent to its broker, by job id; ``down`` makes sends fail."""

    down: bool = False
    sent: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)


@pytest.fixture
def sends(monkeypatch) -> Sends:
    record = Sends()
    send = JobQueue.send

    def recorded_send(self: JobQueue, job: Job) -> None:
        if record.down:
            record.refused.append(job.id)
            raise ConnectionError("broker unreachable")
        send(self, job)
        record.sent.append(job.id)

    monkeypatch.setattr(JobQueue, "send", recorded_send)
    return record


@pytest.fixture
def paused_sweeper(monkeypatch) -> None:
    """The app's own sweeper (a round every 15 s) skips its rounds, so the sweep a test
    runs is the one that sends."""

    async def skip(**_kwargs: Any) -> int:
        return 0

    monkeypatch.setattr(sweeper, "sweep_once", skip)


# Redis down


class TcpProxy:
    """Forwards a loopback port to Redis until ``close``, which drops the listener and
    every open connection: Redis going away under a running app."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed.set()
        self._acceptor.join(5)
        self._listener.close()
        with self._lock:
            for end in self._open:
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()


@asynccontextmanager
async def _app_on_redis(database_url: str, data_dir: Path, redis_url: str, prefix: str):
    """A scaled-out app (Redis broker and event bus) on the test's database."""
    settings = Settings(
        database_url=database_url,
        data_dir=data_dir,
        allowed_roots=str(data_dir),
        secret_key=SECRET,
        redis_url=redis_url,
        redis_prefix=prefix,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://backline.test") as client:
        yield client


async def test_scan_source_is_service_unavailable_when_redis_was_never_there(
    engine, database_url, tmp_path, monkeypatch
):
    cheap_password_hashing(monkeypatch)
    # The app starts: the broker and the event bus connect on first use, not at start-up.
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    async with (
        _app_on_redis(database_url, tmp_path, redis_url, f"test-{uuid.uuid4().hex[:8]}") as app,
        _client(app) as client,
    ):
        token, _ = await register(client, "offline")
        band = 'mutation { createBand(input: {name: "Offline"}) { id } }'
        band_id = (await gql(client, band, token=token)).ok()["createBand"]["id"]
        folder = _tree(tmp_path / "takes")
        add = {"b": band_id, "r": str(folder), "n": "NAS"}
        source_id = (await gql(client, ADD_SOURCE, add, token=token)).ok()["addSource"]["id"]

        result = await gql(client, SCAN, {"s": source_id}, token=token)
        assert result.codes == ["SERVICE_UNAVAILABLE"], result.errors
        assert result.data is None
        assert await _job_count(app.state.session_factory) == 0


@pytest.mark.redis
async def test_scan_source_is_service_unavailable_when_redis_goes_away(
    engine, database_url, tmp_path, monkeypatch, redis_prefix
):
    cheap_password_hashing(monkeypatch)
    host, port = services.REDIS_URL.removeprefix("redis://").split("/")[0].split(":")
    proxy = TcpProxy((host, int(port)))
    try:
        redis_url = f"redis://127.0.0.1:{proxy.port}/0"
        async with (
            _app_on_redis(database_url, tmp_path, redis_url, redis_prefix) as app,
            _client(app) as client,
        ):
            session_factory = app.state.session_factory
            token, _ = await register(client, "flaky")
            band = 'mutation { createBand(input: {name: "Flaky"}) { id } }'
            band_id = (await gql(client, band, token=token)).ok()["createBand"]["id"]
            sources = []
            for name in ("NAS", "Laptop"):
                folder = _tree(tmp_path / name)
                add = {"b": band_id, "r": str(folder), "n": name}
                sources.append(
                    (await gql(client, ADD_SOURCE, add, token=token)).ok()["addSource"]["id"]
                )

            # While Redis answers, the scan is queued and its message sent to Redis.
            first = (await gql(client, SCAN, {"s": sources[0]}, token=token)).ok()["scanSource"]
            assert first["status"] == "QUEUED"
            sent = await _job(session_factory, parse_global_id(first["id"])[1])
            assert sent.enqueued_at is not None

            proxy.close()  # Redis goes away; the broker's pooled connection dies with it
            began = time.monotonic()
            result = await gql(client, SCAN, {"s": sources[1]}, token=token)
            assert result.codes == ["SERVICE_UNAVAILABLE"], result.errors
            assert time.monotonic() - began < 5  # refused at once, not after a long hang
            async with session_factory() as db_session:
                jobs = list(await db_session.scalars(select(Job)))
            assert [job.id for job in jobs] == [sent.id]  # nothing written for the second
    finally:
        proxy.close()


# The sweeper


@pytest.mark.parametrize("lost", ["never sent", "sent and lost"])
async def test_the_sweeper_sends_a_stranded_job_again_and_it_runs(
    app_and_engine, session_factory, paused_sweeper, sends, tmp_path, lost
):
    app, _ = app_and_engine
    queue: JobQueue = app.state.queue
    band_id, job_id = await _band_with_job(session_factory, _tree(tmp_path / "takes"))
    if lost == "sent and lost":
        # Sent (enqueued_at noted), and the broker forgot it: it never runs.
        async with session_factory() as db_session:
            await jobs_service.mark_enqueued(db_session=db_session, job_id=job_id)
            await db_session.commit()

    # Too fresh to call stranded: its request may be sending it right now, or the broker
    # may simply be busy.
    assert await sweep_once(session_factory=session_factory, queue=queue) == 0
    if lost == "never sent":
        await _age(session_factory, job_id, created_at=UNSENT_AFTER + timedelta(seconds=1))
    else:
        old = RESEND_AFTER + timedelta(minutes=1)
        await _age(session_factory, job_id, created_at=old, enqueued_at=old)
    assert (await _job(session_factory, job_id)).status == JobStatus.QUEUED

    assert sends.sent == []
    assert await sweep_once(session_factory=session_factory, queue=queue) == 1
    assert sends.sent == [job_id]
    job = await _ended(session_factory, job_id)
    assert (job.status, job.added, job.skipped, job.failed) == (JobStatus.SUCCEEDED, 6, 1, 0)
    assert job.attempts == 1
    assert len(await _library(session_factory, band_id)) == len(TREE)
    # Done is done: nothing left for the next round.
    assert await sweep_once(session_factory=session_factory, queue=queue) == 0


async def test_a_failed_send_leaves_the_job_queued_for_the_sweeper(
    client, app_and_engine, session_factory, paused_sweeper, sends, tmp_path
):
    app, _ = app_and_engine
    queue: JobQueue = app.state.queue
    token, _ = await register(client, "unlucky")
    band = 'mutation { createBand(input: {name: "Unlucky"}) { id } }'
    band_id = (await gql(client, band, token=token)).ok()["createBand"]["id"]
    add = {"b": band_id, "r": str(_tree(tmp_path / "takes")), "n": "NAS"}
    source_id = (await gql(client, ADD_SOURCE, add, token=token)).ok()["addSource"]["id"]

    sends.down = True
    result = (await gql(client, SCAN, {"s": source_id}, token=token)).ok()["scanSource"]
    # The request succeeded: the row is committed, the sweeper owes it a message.
    job_id = parse_global_id(result["id"])[1]
    assert result["status"] == "QUEUED" and sends.refused == [job_id]
    job = await _job(session_factory, job_id)
    assert (job.status, job.enqueued_at, job.attempts) == (JobStatus.QUEUED, None, 0)
    assert await sweep_once(session_factory=session_factory, queue=queue) == 0  # too fresh
    # Asking again while it waits returns the same job.
    again = (await gql(client, SCAN, {"s": source_id}, token=token)).ok()["scanSource"]
    assert again["id"] == result["id"]
    assert sends.sent == []

    sends.down = False  # the broker is back
    await _age(session_factory, job_id, created_at=UNSENT_AFTER + timedelta(seconds=1))
    assert await sweep_once(session_factory=session_factory, queue=queue) == 1
    assert sends.sent == [job_id]
    job = await _ended(session_factory, job_id)
    assert (job.status, job.added, job.attempts) == (JobStatus.SUCCEEDED, 6, 1)
    assert sends.refused == [job_id]


# Actors running twice


async def _no_events(_channel: str, _message: dict[str, Any]) -> None:
    pass


async def test_a_scan_delivered_twice_changes_nothing_the_second_time(
    app_and_engine, session_factory, paused_sweeper, tmp_path
):
    app, _ = app_and_engine
    events: list[tuple[str, dict[str, Any]]] = []

    async def publish(channel: str, message: dict[str, Any]) -> None:
        events.append((channel, message))

    ctx = ScanContext(session_factory=session_factory, settings=app.state.settings, publish=publish)
    _, job_id = await _band_with_job(session_factory, _tree(tmp_path / "takes"))
    await run_scan(ctx, job_id)
    job = await _job(session_factory, job_id)
    assert (job.status, job.added, job.skipped, job.attempts) == (JobStatus.SUCCEEDED, 6, 1, 1)
    before = await database_snapshot(session_factory)
    assert len(before["track_versions"]) == len(TREE)

    events.clear()
    await run_scan(ctx, job_id)  # the same message, delivered again
    assert await database_snapshot(session_factory) == before
    assert events == []  # and nobody is told anything happened


async def test_a_scan_that_crashed_midway_runs_again_to_the_same_library(
    app_and_engine, session_factory, paused_sweeper, tmp_path, monkeypatch
):
    """A worker dies after some batches committed (here: the event bus fails after the
    first); Dramatiq retries the message and the second run finishes the job. The library
    ends as one clean scan of the same files makes it."""
    app, _ = app_and_engine
    settings = app.state.settings
    monkeypatch.setattr(scan_module, "BATCH", 2)
    folder = _tree(tmp_path / "takes")

    async def failing_bus(_channel: str, message: dict[str, Any]) -> None:
        if message.get("type") == "VersionAdded":
            raise ServiceUnavailable("Redis is unreachable")

    band_id, job_id = await _band_with_job(session_factory, folder)
    crashing = ScanContext(session_factory=session_factory, settings=settings, publish=failing_bus)
    with pytest.raises(ServiceUnavailable):
        await run_scan(crashing, job_id)
    job = await _job(session_factory, job_id)
    assert job.status == JobStatus.RUNNING  # nobody ended it: the retry will
    partial = await _library(session_factory, band_id)
    assert 0 < len(partial) < len(TREE)

    ctx = ScanContext(session_factory=session_factory, settings=settings, publish=_no_events)
    await run_scan(ctx, job_id)
    job = await _job(session_factory, job_id)
    assert (job.status, job.added, job.failed, job.attempts) == (JobStatus.SUCCEEDED, 6, 0, 2)
    retried = await _library(session_factory, band_id)

    clean_band, clean_job = await _band_with_job(session_factory, folder)
    await run_scan(ctx, clean_job)
    assert retried == await _library(session_factory, clean_band)
    assert [row[:4] for row in retried] == [
        ("240301/ballad/take1.wav", "ballad", 1, date(2024, 3, 1)),
        ("240301/groove/take1.wav", "groove", 1, date(2024, 3, 1)),
        ("240301/groove/take2.wav", "groove", 2, date(2024, 3, 1)),
        ("240301/jam.wav", "jam", 1, date(2024, 3, 1)),
        ("240308/groove/take1.wav", "groove", 3, date(2024, 3, 8)),
        ("loose idea.wav", "loose idea", 1, None),
    ]
