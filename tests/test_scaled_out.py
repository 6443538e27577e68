"""Scaled out for real: two api processes and one worker process, each a `backline`
subprocess, sharing PostgreSQL and Redis. A subscriber on api #1 follows a scan that was
requested through api #2 and run by the worker: progress, the new takes, the end.

The worker is paused (SIGSTOP) while the scan is requested: the job stays QUEUED until it
resumes, which shows that neither api process runs actors itself when Redis is set."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from backend.core.database import create_engine
from backend.core.migrations import upgrade_to_head
from backend.graphql.relay import from_global_id
from tests import services
from tests.audio_fixtures import write_wav
from tests.graphql_client import gql, register
from tests.live_server import connect, eventually, free_port, next_message, subscribe

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[1]
# The venv's console script, else the same module run by this interpreter.
_SCRIPT = Path(sys.executable).with_name("backline")
BACKLINE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "backend.cli"]
READY_DEADLINE = 60.0  # generous: three processes import at once on a busy machine
TAKES = ["240301/groove/take1.wav", "240301/groove/take2.wav", "240308/ballad.wav"]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Cluster:
    """The processes of one deployment; each in its own process group, so that ending
    it ends the children too (the worker's supervisor forks its worker process)."""

    workdir: Path
    base_env: dict[str, str]
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, *args: str, **env: str) -> Process:
        log = self.workdir / f"{name}.log"
        data_dir = self.workdir / name
        environment = {**self.base_env, "BACKLINE_DATA_DIR": str(data_dir), **env}
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [*BACKLINE, *args],
                cwd=ROOT,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def start_api(self, name: str) -> str:
        port = free_port()
        self.start(name, "serve", BACKLINE_PORT=str(port))
        return f"127.0.0.1:{port}"

    async def wait_ready(self, name: str, address: str) -> None:
        process = next(p for p in self.processes if p.name == name)
        deadline = time.monotonic() + READY_DEADLINE
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=2) as client:
            while time.monotonic() < deadline:
                if exited(process.popen.pid):
                    pytest.fail(f"{name} exited before it was ready")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        pytest.fail(f"{name} was not ready within {READY_DEADLINE} s")

    def signal(self, name: str, signum: int) -> None:
        process = next(p for p in self.processes if p.name == name)
        signal_group(process.popen.pid, signum)

    def stop_all(self) -> None:
        running = [p for p in self.processes if p.popen.returncode is None]
        for process in running:
            signal_group(process.popen.pid, signal.SIGCONT)  # a paused one could not stop
            # SIGTERM to the leader only, as `docker stop` does: the worker's supervisor
            # passes it on, and a worker process that gets it twice (from the group and
            # from its supervisor) hangs in Dramatiq's "Killing worker process...".
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.popen.pid, signal.SIGTERM)  # not send_signal: it reaps
        deadline = time.monotonic() + 10
        for process in running:
            while not exited(process.popen.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            # The leader is not reaped yet (a zombie at most), so the group id is still
            # ours: end whatever is left in it (the worker's forked process), then reap.
            signal_group(process.popen.pid, signal.SIGKILL)
            process.popen.wait()

    def report(self) -> str:
        return "\n".join(
            f"----- {p.name} (exit {p.popen.returncode}) -----\n{p.output()}"
            for p in self.processes
        )


def exited(pid: int) -> bool:
    """Whether a child has exited, without reaping it (WNOWAIT)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


@pytest.fixture
async def redis_admin() -> AsyncIterator[Redis]:
    try:
        await services.redis_available()
    except Exception as error:  # connection refused, timeout, ...
        services.missing("Redis on 127.0.0.1:6379", error)
    client = Redis.from_url(services.REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    try:
        url, name = await services.create_postgres_database()
    except Exception as error:  # any connection failure
        services.missing("PostgreSQL on 127.0.0.1:5432", error)
    try:
        yield url
    finally:
        await services.drop_postgres_database(name)


@pytest.fixture
def prefix() -> str:
    return f"backline-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def cluster(
    database_url: str, redis_admin: Redis, prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    # Nothing of this shell's own BACKLINE_* settings leaks into the deployment.
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("BACKLINE_")}
    base_env.update(
        BACKLINE_DATABASE_URL=database_url,
        BACKLINE_REDIS_URL=services.REDIS_URL,
        BACKLINE_REDIS_PREFIX=prefix,
        BACKLINE_ALLOWED_ROOTS=str(recordings),
        BACKLINE_SECRET_KEY="scaled-out-test-secret-key-long-enough-for-hs256",
        PYTHONUNBUFFERED="1",
    )
    cluster = Cluster(workdir=tmp_path, base_env=base_env)
    try:
        engine = create_engine(database_url)
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()
        yield cluster
    finally:
        cluster.stop_all()
        # Shown by pytest only when the test fails.
        print(cluster.report())
        keys = [key async for key in redis_admin.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis_admin.delete(*keys)


async def subscribers_on_redis(redis_admin: Redis, channel: str) -> int:
    [(_, count)] = await redis_admin.pubsub_numsub(channel)
    return count


BAND_EVENTS = """subscription($id: ID!) { bandEvents(bandId: $id) {
  __typename
  ... on VersionAdded { version { label track { title } } }
  ... on JobUpdated { job { id status } }
} }"""
JOB_PROGRESS = """subscription($id: ID!) { jobProgress(jobId: $id) {
  status progress processed total added } }"""
ADD_SOURCE = """mutation($b: ID!, $r: String!) {
  addSource(input: {bandId: $b, kind: LOCAL_FOLDER, name: "rehearsals", root: $r}) { id } }"""
SCAN = "mutation($s: ID!) { scanSource(sourceId: $s) { id status } }"
JOB = "query($id: ID!) { job(id: $id) { status } }"


async def test_subscriber_on_one_api_sees_a_scan_requested_on_the_other_run_by_the_worker(
    cluster: Cluster, redis_admin: Redis, prefix: str
) -> None:
    api1, api2 = cluster.start_api("api1"), cluster.start_api("api2")
    cluster.start("worker", "worker", "--processes", "1", "--threads", "2")
    await asyncio.gather(cluster.wait_ready("api1", api1), cluster.wait_ready("api2", api2))

    recordings = Path(cluster.base_env["BACKLINE_ALLOWED_ROOTS"])
    for index, take in enumerate(TAKES):
        path = recordings / take
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, seconds=0.05, tone_hz=200 + 50 * index)

    async with httpx.AsyncClient(base_url=f"http://{api2}", timeout=10) as on_api2:
        # Everything is set up through api #2.
        token, _ = await register(on_api2, "scaled")
        band_id = (
            await gql(on_api2, 'mutation { createBand(input: {name: "Out"}) { id } }', token=token)
        ).ok()["createBand"]["id"]
        source_id = (
            await gql(on_api2, ADD_SOURCE, {"b": band_id, "r": str(recordings)}, token=token)
        ).ok()["addSource"]["id"]

        # The subscriber is on api #1; it listens on Redis before anything happens.
        band_ws = await connect(api1, token)
        job_ws = None
        try:
            await subscribe(band_ws, "band", BAND_EVENTS, {"id": band_id})
            band_pk = from_global_id(band_id, expected="Band", field="bandId")
            channel = f"{prefix}:events:band:{band_pk}"
            await eventually(lambda: subscribers_on_redis(redis_admin, channel))

            # The worker is paused (booted or not): only an api process could run the job.
            cluster.signal("worker", signal.SIGSTOP)
            job = (await gql(on_api2, SCAN, {"s": source_id}, token=token)).ok()["scanSource"]
            assert job["status"] == "QUEUED"
            job_ws = await connect(api1, token)
            await subscribe(job_ws, "job", JOB_PROGRESS, {"id": job["id"]})
            first = await next_message(job_ws)
            assert first["type"] == "next", first
            assert first["payload"]["data"]["jobProgress"]["status"] == "QUEUED"

            # Neither api process runs it: the job waits in Redis for the worker.
            await asyncio.sleep(1.0)
            still = (await gql(on_api2, JOB, {"id": job["id"]}, token=token)).ok()["job"]
            assert still["status"] == "QUEUED"
            with pytest.raises(TimeoutError):
                await next_message(job_ws, wait=0.05)

            cluster.signal("worker", signal.SIGCONT)

            # Progress, published by the worker, reaches the subscriber on api #1.
            states = []
            while True:
                message = await next_message(job_ws)
                if message["type"] == "complete":
                    break
                assert message["type"] == "next", message
                states.append(message["payload"]["data"]["jobProgress"])
            assert states, "no progress after the worker resumed"
            assert states[-1]["status"] == "SUCCEEDED", states
            assert states[-1]["added"] == len(TAKES), states
            assert states[-1]["progress"] == 1.0
            progress = [state["progress"] for state in states]
            assert progress == sorted(progress)

            # The band's stream on api #1: the job's changes and a VersionAdded per take.
            added: list[dict[str, Any]] = []
            statuses: list[str] = []
            while "SUCCEEDED" not in statuses or len(added) < len(TAKES):
                message = await next_message(band_ws)
                assert message["type"] == "next", message
                event = message["payload"]["data"]["bandEvents"]
                if event["__typename"] == "VersionAdded":
                    added.append(event["version"])
                elif event["__typename"] == "JobUpdated":
                    assert event["job"]["id"] == job["id"]
                    statuses.append(event["job"]["status"])
            assert "RUNNING" in statuses and statuses[-1] == "SUCCEEDED", statuses
            assert sorted(take["track"]["title"] for take in added) == [
                "ballad",
                "groove",
                "groove",
            ]
        finally:
            await band_ws.close()
            if job_ws is not None:
                await job_ws.close()

        done = (await gql(on_api2, JOB, {"id": job["id"]}, token=token)).ok()["job"]
        assert done["status"] == "SUCCEEDED"
