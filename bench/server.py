"""What the benchmark runs against: throw-away PostgreSQL databases, and a real uvicorn
process serving the app plus the hand-written endpoint (bench/handwritten.py)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from bench.band_page import BAND_PAGE

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_DSN = os.environ.get(
    "BACKLINE_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
SECRET_KEY = "bench-secret-key-that-is-long-enough-for-hs256"
HEALTH_TIMEOUT = 30  # seconds for uvicorn to import the app and answer /healthz


# --------------------------------------------------------------------------- PostgreSQL


async def create_postgres_database() -> tuple[str, str]:
    """A fresh database on the test server: (SQLAlchemy URL, name)."""
    name = f"backline_bench_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}", name


async def drop_postgres_database(name: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        # FORCE: a connection the server or a pool left open must not keep it alive.
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def postgres_version() -> str:
    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        return f"unreachable ({type(error).__name__})"
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


# --------------------------------------------------------------------------- uvicorn


@dataclass
class Server:
    base_url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (from /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# A bench measures speed, not budgets: its thousands of requests would spend them.
BENCH_SETTINGS = {"BACKLINE_RATE_LIMIT_POINTS": "0", "BACKLINE_RATE_LIMIT_ANONYMOUS_POINTS": "0"}


def trusted_manifest(data_dir: Path) -> Path:
    """The benches' front-end pages as trusted documents (the band page nests 9 deep),
    as frontend-contract/'s manifest makes a real front end's."""
    path = data_dir / "trusted-documents.json"
    path.write_text(json.dumps({hashlib.sha256(BAND_PAGE.encode()).hexdigest(): BAND_PAGE}))
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _log_tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.asynccontextmanager
async def serve(
    database_url: str,
    data_dir: Path,
    *,
    app: str = "bench.handwritten:app_factory",
    env: Mapping[str, str] | None = None,
    uvicorn_args: Sequence[str] = (),
) -> AsyncIterator[Server]:
    """A real uvicorn process (one worker, as `backline serve` runs) with the bench app
    (or another ``--factory`` app), extra ``BACKLINE_*`` variables and uvicorn options;
    stopped on the way out, whatever happened."""
    port = _free_port()
    log_path = data_dir / "uvicorn.log"
    env = {
        **os.environ,
        "BACKLINE_DATABASE_URL": database_url,
        "BACKLINE_SECRET_KEY": SECRET_KEY,
        "BACKLINE_DATA_DIR": str(data_dir),
        **BENCH_SETTINGS,
        "BACKLINE_TRUSTED_DOCUMENTS": str(trusted_manifest(data_dir)),
        **(env or {}),
    }
    # A file, not a pipe: a pipe nobody reads could fill up and stall the server.
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",  # a log line per request would be measured too
            "--ws-per-message-deflate",  # as `backline serve` runs: no per-socket deflate
            "false",
            *uvicorn_args,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            await _wait_healthy(base_url, process, log_path)
            yield Server(base_url, process.pid)
        finally:
            await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), 15)
    except TimeoutError:
        process.kill()
        await process.wait()


async def _wait_healthy(base_url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"uvicorn exited ({process.returncode}):\n{_log_tail(log)}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(
        f"uvicorn did not answer /healthz within {HEALTH_TIMEOUT} s:\n{_log_tail(log)}"
    )
