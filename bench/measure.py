"""The measurements: sequential latency and concurrent throughput over the real server,
then, in-process, the SQL statements of one request and what each part of the GraphQL
track selection costs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.core.settings import Settings
from bench.band_page import Endpoint, endpoints
from bench.handwritten import create_bench_app
from bench.server import Server

IN_PROCESS_REPEATS = 15  # requests per in-process figure; the median one is kept
WARM_UP = 3  # in-process requests first: schema, statement compilation, pages in cache
REPLAYS = 7  # runs of each statement replayed alone; the best one is kept


@dataclass
class Figures:
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    rps: float = 0.0
    concurrent_requests: int = 0
    errors: int = 0
    cpu_ms: float = 0.0
    statements: int = 0
    in_process_ms: float = 0.0
    sql_ms: float = 0.0
    response_kb: float = 0.0
    statement_times: list[tuple[float, str]] = field(default_factory=list)


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# --------------------------------------------------------------------------- over HTTP


async def sequential(
    client: httpx.AsyncClient, endpoint: Endpoint, *, warmup: int, timed: int, figures: Figures
) -> None:
    """p50/p95 of `timed` requests one after another, after `warmup` untimed ones."""
    for _ in range(warmup):
        if endpoint.failed(await endpoint.send(client)):
            figures.errors += 1
    latencies = []
    for _ in range(timed):
        started = time.perf_counter()
        response = await endpoint.send(client)
        latencies.append(time.perf_counter() - started)
        if endpoint.failed(response):
            figures.errors += 1
    figures.p50_ms = _percentile(latencies, 0.50) * 1000
    figures.p95_ms = _percentile(latencies, 0.95) * 1000


async def concurrent(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    server: Server,
    *,
    clients: int,
    total: int,
    max_seconds: float,
    figures: Figures,
) -> None:
    """`clients` loops share `total` requests; bounded by `max_seconds` either way."""
    remaining = total
    done = 0
    cpu_started = server.cpu_seconds()
    started = time.perf_counter()
    deadline = started + max_seconds

    async def worker() -> None:
        nonlocal remaining, done
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            try:
                response = await endpoint.send(client)
                failed = endpoint.failed(response)
            except httpx.HTTPError:
                failed = True
            done += 1
            figures.errors += failed

    await asyncio.gather(*(worker() for _ in range(clients)))
    figures.concurrent_requests = done
    figures.rps = done / (time.perf_counter() - started)
    # The server's own CPU per request: less sensitive than rps to whatever else runs.
    figures.cpu_ms = (server.cpu_seconds() - cpu_started) * 1000 / max(done, 1)


# --------------------------------------------------------------------------- in-process


class StatementRecorder:
    """SQL statements (and their parameters) while ``active``, like tests' StatementCounter."""

    def __init__(self) -> None:
        self.active = False
        self.statements: list[tuple[str, Any]] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if self.active:
            self.statements.append((statement, parameters))


@contextlib.asynccontextmanager
async def _asgi_client(
    settings: Settings, token: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The bench app started in this process, reached over httpx.ASGITransport: no network
    and no second process, so what is timed is the app's own work."""
    app = create_bench_app(settings)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://bench.test", headers=headers
        ) as client,
    ):
        yield app, client


async def replay(engine: AsyncEngine, statements: Sequence[tuple[str, Any]]) -> list[float]:
    """Each statement's own time (best of REPLAYS), run alone on one connection. Timing them
    inside the request would not do: while one awaits the database, the event loop runs
    other resolvers, so a statement's wall time there includes unrelated Python work."""
    times = []
    async with engine.connect() as connection:
        for statement, parameters in statements:
            runs = []
            for _ in range(REPLAYS):
                started = time.perf_counter()
                # Fetch every row, as the app does; the driver-level SQL and parameters as sent.
                (await connection.exec_driver_sql(statement, tuple(parameters))).all()
                runs.append(time.perf_counter() - started)
            # The best run: what the statement costs, not what else the machine was doing.
            times.append(min(runs))
    return times


async def in_process(
    settings: Settings, band_gid: str, token: str, results: dict[str, Figures]
) -> None:
    """Statements per request, SQL time and response size of each endpoint, from the median
    of IN_PROCESS_REPEATS requests, with a listener on the app's engine."""
    async with _asgi_client(settings, token) as (app, client):
        engine: AsyncEngine = app.state.engine
        recorder = StatementRecorder()
        event.listen(engine.sync_engine, "before_cursor_execute", recorder)
        try:
            for endpoint in endpoints(band_gid):
                for _ in range(WARM_UP):
                    await endpoint.send(client)
                runs: list[tuple[float, list[tuple[str, Any]], int]] = []
                for _ in range(IN_PROCESS_REPEATS):
                    recorder.statements = []
                    recorder.active = True
                    started = time.perf_counter()
                    response = await endpoint.send(client)
                    wall = time.perf_counter() - started
                    recorder.active = False
                    runs.append((wall, recorder.statements, len(response.content)))
                runs.sort(key=lambda run: run[0])
                wall, statements, size = runs[len(runs) // 2]  # the median run
                times = await replay(engine, statements)
                figures = results[endpoint.name]
                figures.statements = len(statements)
                figures.in_process_ms = wall * 1000
                figures.sql_ms = sum(times) * 1000
                figures.statement_times = [
                    (seconds, sql) for seconds, (sql, _) in zip(times, statements, strict=True)
                ]
                figures.response_kb = size / 1024
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", recorder)


# Parts of the track selection of BAND_PAGE, to see what each costs (``--breakdown``).
TRACK_PARTS = {
    "commentCount": "commentCount",
    "reactions": "reactions { total counts { kind count viewerReacted } }",
    "latestVersion (bare)": "latestVersion { id label durationMs status }",
    "latestVersion + analysis, session": (
        "latestVersion { id label durationMs status analysis { bpm key scale loudnessLufs } "
        "session { id date } }"
    ),
    "versions(first: 3) (bare)": "versions(first: 3) { nodes { id number label durationMs } }",
    "versions(first: 3) + session": (
        "versions(first: 3) { nodes { id number label durationMs session { date } } }"
    ),
    "sessions": "sessions { id date }",
}


async def breakdown(settings: Settings, band_gid: str, token: str) -> None:
    """In-process CPU time of the page with only the track scalars, then with each part
    added alone: where GraphQL's time goes (process CPU, so SQLite's work counts too)."""
    parts = {"scalars only (id title status bpm key)": "", **TRACK_PARTS}
    print(
        f"GraphQL CPU by part of the track selection (in-process, median of {IN_PROCESS_REPEATS}):"
    )
    async with _asgi_client(settings, token) as (_, client):
        baseline = 0.0
        for label, part in parts.items():
            query = (
                "query($id: ID!) { band(id: $id) { name tracks(first: 50, orderBy: TITLE) { "
                "totalCount pageInfo { hasNextPage endCursor } "
                f"nodes {{ id title status bpm key {part} }} }} }} }}"
            )
            body = {"query": query, "variables": {"id": band_gid}}
            for _ in range(WARM_UP):
                await client.post("/graphql", json=body)
            runs = []
            for _ in range(IN_PROCESS_REPEATS):
                # Process CPU, not wall time: waits on the database do not count.
                started = time.process_time()
                response = await client.post("/graphql", json=body)
                runs.append(time.process_time() - started)
                if Endpoint.failed(response):
                    raise RuntimeError(f"{label}: {response.text[:300]}")
            cpu = sorted(runs)[IN_PROCESS_REPEATS // 2] * 1000
            baseline = baseline or cpu
            extra = f"(+{cpu - baseline:5.1f} ms)" if part else ""
            print(f"  {cpu:6.1f} ms {extra:>13}  {label}")
