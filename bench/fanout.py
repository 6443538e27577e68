"""Subscription fan-out on ONE api process: N websocket subscribers to ``bandEvents``
receive one event. Prints delivery latency (p50/p99/max), what was received, dropped or
errored, and the api's memory per connection; asserts nothing about speed.

For each ``--subscribers`` count it starts a fresh api process: the app as shipped
(``backend.app:create_app``) under uvicorn, one process as ``backline serve`` runs it,
embedded SQLite by default (``--database postgresql``: a throw-away database) and the
in-process event bus (``--redis``: Redis pub/sub). The database is migrated and seeded
once (bench/seed.py: one band, a small library) with one extra band member per
subscriber, each with its own access token: every connection is a different user.

``--clients`` load processes (bench/fanout_client.py, websockets on uvloop) open the N
websockets: graphql-transport-ws connection_init, connection_ack, then subscribe to
``bandEvents(bandId)`` with the README's selection (``CommentAdded { comment { body author
{ handle } } }``; ``--viewer-field`` adds ``email``, which only its owner sees, so the api
executes that selection per subscriber instead of once per event). Then ``--rounds``
times: one comment is added through the ``addComment`` mutation (the cheapest real event:
one INSERT, then CommentAdded on the band's channel) and each subscriber's delivery
latency is the time from just before the mutation is sent to its client process reading
the event. Both sides read ``time.monotonic()``, one
clock for every process of a Linux machine, so no alignment is needed.

The api's RSS (``/proc/<pid>/status`` VmRSS) is read after a warm-up (a few subscribers,
one event, closed), once the N subscribers are connected and the api is idle again, and
after the rounds: the difference over N is the memory per connection.

    .venv/bin/python bench/fanout.py [--subscribers 1000 5000] [--rounds 5]
        [--database sqlite|postgresql] [--redis] [--clients 2] [--compression] [--viewer-field]
        [--app module:factory]

Per round: received/expected (expected: subscriptions still open when triggered),
p50/p99/max latency of the deliveries; missing: open, but nothing within
``--round-timeout``; errors: a result with errors instead of the event (or anything else
unexpected); ended: subscriptions the api ended (``error``/``complete``, socket still
open), so far; dropped: sockets closed under us, so far; the mutation's own time; the api's
and the load processes' CPU over the round. Exits non-zero only when the harness itself
fails (server, load process, warm-up, mutation), never because of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from backend.accounts.models import User
from backend.accounts.tokens import create_access_token
from backend.bands.models import BandMember
from backend.core.database import create_engine
from backend.core.settings import Settings
from backend.graphql.relay import to_global_id
from bench import report
from bench.fanout_client import raise_fd_limit
from bench.graphql_page import migrate_and_seed
from bench.server import (
    ROOT,
    SECRET_KEY,
    Server,
    create_postgres_database,
    drop_postgres_database,
    postgres_version,
    serve,
)

REDIS_URL = os.environ.get("BACKLINE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TARGETS = {1_000: 0.250, 5_000: 1.0}  # p99 seconds, from the issue
WARM_UP_SUBSCRIBERS = 20
IDLE_CPU = 0.03  # "idle": the api used under 3 % of a CPU over SETTLE_INTERVAL
SETTLE_INTERVAL = 0.5
SETTLE_MAX = 120.0  # seconds; after that the figures are taken anyway, and say so
ADD_COMMENT = """mutation($v: ID!, $body: String!) {
  addComment(input: {versionId: $v, body: $body}) { id }
}"""


# --------------------------------------------------------------------------- figures


@dataclass
class RoundFigures:
    label: str
    expected: int  # live subscribers when armed
    latencies: list[float] = field(default_factory=list)  # seconds, one per delivery
    missing: int = 0  # open, but nothing (neither event nor errors) within the timeout
    late: int = 0  # an earlier round's missing event, arrived during this round
    invalid: int = 0  # got a message with the marker that is not the right event
    unexpected: int = 0  # other messages meanwhile (errors instead of the event, ...)
    ended: int = 0  # subscriptions the api ended (error, complete), socket open, so far
    dropped: int = 0  # sockets the server (or the network) closed, so far
    samples: list[str] = field(default_factory=list)
    mutation_s: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    settled: bool = True


@dataclass
class Run:
    subscribers: int
    label: str
    connected: int = 0
    connect_failed: int = 0
    connect_samples: list[str] = field(default_factory=list)
    connect_s: float = 0.0
    handshakes: list[float] = field(default_factory=list)
    connect_cpu_s: float = 0.0
    rss_baseline_kb: int = 0
    rss_connected_kb: int = 0
    rss_after_kb: int = 0
    hwm_kb: int = 0
    rounds: list[RoundFigures] = field(default_factory=list)
    dropped_end: int = 0
    dropped_samples: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load_before: float = 0.0
    load_after: float = 0.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest rank, as bench/measure.py does."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def memory_kb(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


async def settle(server: Server) -> bool:
    """Wait until the api is idle (what it was doing is done); False if it never was."""
    deadline = time.monotonic() + SETTLE_MAX
    while time.monotonic() < deadline:
        before = server.cpu_seconds()
        await asyncio.sleep(SETTLE_INTERVAL)
        if server.cpu_seconds() - before < IDLE_CPU * SETTLE_INTERVAL:
            return True
    return False


# --------------------------------------------------------------------------- load processes


class LoadProcess:
    """One bench/fanout_client.py process, spoken to in JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    async def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if not line:
            await self.process.wait()
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"load process exited ({self.process.returncode}):\n{tail}")
        return json.loads(line)


@contextlib.asynccontextmanager
async def load_processes(count: int, workdir: Path) -> AsyncIterator[list[LoadProcess]]:
    loads: list[LoadProcess] = []
    try:
        for index in range(count):
            log = workdir / f"load-{index}.log"
            with log.open("wb") as stderr:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.fanout_client",
                    cwd=ROOT,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=stderr,
                    limit=1 << 26,  # answers carry thousands of receive times
                )
            loads.append(LoadProcess(process, log))
        yield loads
    finally:
        for load in loads:
            if load.process.returncode is None:
                assert load.process.stdin is not None
                load.process.stdin.close()
                try:
                    await asyncio.wait_for(load.process.wait(), 30)
                except TimeoutError:
                    load.process.kill()
                    await load.process.wait()


async def ask_all(loads: Sequence[LoadProcess], commands: Sequence[dict[str, Any]]) -> list[Any]:
    return await asyncio.gather(*(load.ask(c) for load, c in zip(loads, commands, strict=True)))


def split(tokens: Sequence[str], parts: int) -> list[list[str]]:
    return [list(tokens[index::parts]) for index in range(parts)]


# --------------------------------------------------------------------------- the bench


@dataclass
class Setup:
    url: str
    workdir: Path
    env: dict[str, str]
    band_gid: str
    version_gid: str
    admin_token: str
    tokens: list[str]  # one per extra member; the first WARM_UP_SUBSCRIBERS warm up
    args: argparse.Namespace


async def add_members(url: str, band_id: int, count: int) -> list[int]:
    """`count` more members of the band (bulk Core inserts); their user ids."""
    engine = create_engine(url)
    users = User.__table__
    try:
        async with engine.begin() as connection:
            await connection.execute(
                users.insert(),
                [
                    {"handle": f"fan{i}", "email": f"fan{i}@bench.test", "display_name": f"F{i}"}
                    for i in range(count)
                ],
            )
            ids = list(
                (
                    await connection.execute(
                        select(users.c.id).where(users.c.handle.like("fan%")).order_by(users.c.id)
                    )
                ).scalars()
            )
            await connection.execute(
                BandMember.__table__.insert(),
                [{"band_id": band_id, "user_id": user_id, "role": "MEMBER"} for user_id in ids],
            )
    finally:
        await engine.dispose()
    return ids


async def one_round(
    label: str,
    marker: str,
    setup: Setup,
    server: Server,
    http: httpx.AsyncClient,
    loads: Sequence[LoadProcess],
) -> RoundFigures:
    armed = await ask_all(loads, [{"cmd": "arm", "marker": marker}] * len(loads))
    figures = RoundFigures(label=label, expected=sum(a["armed"] for a in armed))
    cpu_before = server.cpu_seconds()
    started = time.monotonic()  # just before the trigger: every latency starts here
    response = await http.post(
        "/graphql",
        json={"query": ADD_COMMENT, "variables": {"v": setup.version_gid, "body": marker}},
    )
    figures.mutation_s = time.monotonic() - started
    if response.status_code != 200 or response.json().get("errors"):
        raise RuntimeError(f"addComment failed ({response.status_code}): {response.text[:500]}")
    timeout = {"cmd": "collect", "timeout": setup.args.round_timeout}
    answers = await ask_all(loads, [timeout] * len(loads))
    # Until the api is idle again: the rest of the delivery work (between_events) counts.
    figures.settled = await settle(server)
    figures.server_cpu_s = server.cpu_seconds() - cpu_before
    for before, answer in zip(armed, answers, strict=True):
        figures.latencies += [at - started for at in answer["times"]]
        figures.missing += answer["missing"]
        figures.late += answer["late"]
        figures.invalid += answer["invalid"]
        figures.unexpected += answer["unexpected"]
        figures.ended += answer["ended"]
        figures.dropped += answer["dropped"]
        figures.client_cpu_s += answer["cpu"] - before["cpu"]
        for key in ("invalid_samples", "unexpected_samples", "ended_samples", "dropped_samples"):
            figures.samples += answer[key]
    return figures


async def bench_subscribers(count: int, setup: Setup, label: str) -> Run:
    args = setup.args
    run = Run(subscribers=count, label=label)
    workdir = setup.workdir / f"n{count}"
    workdir.mkdir()
    uvicorn_args = ["--backlog", str(max(2048, count))]
    if not args.compression:
        uvicorn_args += ["--ws-per-message-deflate", "false"]
    async with (
        serve(
            setup.url,
            workdir,
            app=args.app,
            env=setup.env,
            uvicorn_args=uvicorn_args,
        ) as server,
        httpx.AsyncClient(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {setup.admin_token}"},
            timeout=120,
        ) as http,
        load_processes(args.clients, workdir) as loads,
    ):
        ws_url = server.base_url.replace("http://", "ws://", 1) + "/graphql"

        def connect(tokens: list[str]) -> dict[str, Any]:
            return {
                "cmd": "connect",
                "url": ws_url,
                "band": setup.band_gid,
                "tokens": tokens,
                "concurrency": args.connect_concurrency,
                "compression": args.compression,
                "viewer_field": args.viewer_field,
            }

        # Warm-up: imports, schema, statement caches, the first of everything.
        warm = setup.tokens[:WARM_UP_SUBSCRIBERS]
        answer = await loads[0].ask(connect(warm))
        if answer["connected"] != len(warm):
            raise RuntimeError(f"warm-up subscribers failed to connect: {answer['failures']}")
        await settle(server)
        warm_round = await one_round(
            "warm-up", f"fanout warm-up {uuid.uuid4().hex[:8]}", setup, server, http, loads[:1]
        )
        if len(warm_round.latencies) != len(warm):
            raise RuntimeError(f"warm-up event not received by all: {warm_round.samples}")
        await loads[0].ask({"cmd": "close"})
        await settle(server)
        run.rss_baseline_kb, _ = memory_kb(server.pid)
        run.load_before = os.getloadavg()[0]

        # N subscribers, spread over the load processes.
        tokens = setup.tokens[:count]
        cpu_before = server.cpu_seconds()
        answers = await ask_all(loads, [connect(part) for part in split(tokens, len(loads))])
        for answer in answers:
            run.connected += answer["connected"]
            run.connect_failed += answer["failed"]
            run.connect_samples += answer["failures"]
            run.handshakes += answer["durations"]
            run.connect_s = max(run.connect_s, answer["seconds"])
        print(
            f"  {run.connected:,} connected in {run.connect_s:.1f} s, "
            f"{run.connect_failed} failed; waiting for the api to settle",
            flush=True,
        )
        if not await settle(server):
            run.notes.append(f"api still busy {SETTLE_MAX:.0f} s after connecting")
        run.connect_cpu_s = server.cpu_seconds() - cpu_before
        run.rss_connected_kb, _ = memory_kb(server.pid)

        for index in range(1, args.rounds + 1):
            marker = f"fanout {count} round {index} {uuid.uuid4().hex[:8]}"
            figures = await one_round(str(index), marker, setup, server, http, loads)
            run.rounds.append(figures)
            print("  " + round_line(figures), flush=True)
            if not figures.settled:
                run.notes.append(f"round {index}: api still busy {SETTLE_MAX:.0f} s after")
            await asyncio.sleep(args.pause)

        run.rss_after_kb, run.hwm_kb = memory_kb(server.pid)
        run.load_after = os.getloadavg()[0]
        for answer in await ask_all(loads, [{"cmd": "close"}] * len(loads)):
            run.dropped_end += answer["dropped"]
            run.dropped_samples += answer["dropped_samples"]
    return run


# --------------------------------------------------------------------------- report


ROUND_HEADINGS = (
    "received",
    "p50 ms",
    "p99 ms",
    "max ms",
    "missing",
    "errors",
    "ended",
    "dropped",
    "mutation ms",
    "api CPU s",
    "load CPU s",
)


def _row(name: str, cells: Iterable[str]) -> str:
    return f"{name:<6}" + "".join(f"{cell:>13}" for cell in cells)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}" if seconds == seconds else "-"  # NaN: nothing received


def round_cells(f: RoundFigures) -> list[str]:
    return [
        f"{len(f.latencies):,}/{f.expected:,}",
        _ms(percentile(f.latencies, 0.50)),
        _ms(percentile(f.latencies, 0.99)),
        _ms(max(f.latencies, default=float("nan"))),
        f"{f.missing}",
        f"{f.invalid + f.unexpected}",
        f"{f.ended}",
        f"{f.dropped}",
        f"{f.mutation_s * 1000:.0f}",
        f"{f.server_cpu_s:.2f}",
        f"{f.client_cpu_s:.2f}",
    ]


def round_line(f: RoundFigures) -> str:
    cells = round_cells(f)
    return f"round {f.label}: " + ", ".join(
        f"{heading} {cell}" for heading, cell in zip(ROUND_HEADINGS, cells, strict=True)
    )


def errors_of(run: Run) -> int:
    """Events that did not arrive or came wrong, errors sent, subscriptions ended."""
    ended = run.rounds[-1].ended if run.rounds else 0
    return sum(f.invalid + f.unexpected + f.missing for f in run.rounds) + ended


def table(run: Run) -> list[str]:
    every = [latency for f in run.rounds for latency in f.latencies]
    expected = sum(f.expected for f in run.rounds)
    lines = [
        f"{run.label} — {run.subscribers:,} subscribers, {len(run.rounds)} events "
        f"(1-min load average {run.load_before:.2f} before, {run.load_after:.2f} after)",
        _row("round", ROUND_HEADINGS),
    ]
    lines += [_row(f.label, round_cells(f)) for f in run.rounds]
    total = RoundFigures(label="all", expected=expected, latencies=every)
    total.missing = sum(f.missing for f in run.rounds)
    total.invalid = sum(f.invalid for f in run.rounds)
    total.unexpected = sum(f.unexpected for f in run.rounds)
    total.ended = run.rounds[-1].ended if run.rounds else 0
    total.dropped = run.dropped_end
    total.mutation_s = percentile([f.mutation_s for f in run.rounds], 0.5)
    total.server_cpu_s = sum(f.server_cpu_s for f in run.rounds) / max(len(run.rounds), 1)
    total.client_cpu_s = sum(f.client_cpu_s for f in run.rounds) / max(len(run.rounds), 1)
    lines.append(_row("all", round_cells(total)))
    per_event_ms = total.server_cpu_s * 1000 / max(run.connected, 1)
    lines.append(
        "all: every delivery of every round; ended, dropped: at the end; mutation ms: "
        f"median; CPU s: mean per round (api: {per_event_ms:.2f} ms of CPU per subscriber "
        "per event); received/expected: expected = subscriptions still open when triggered"
    )
    handshake = (
        f"connect + ack p50 {_ms(percentile(run.handshakes, 0.5))} ms, "
        f"p99 {_ms(percentile(run.handshakes, 0.99))} ms"
    )
    lines.append(
        f"connect: {run.connected:,} of {run.subscribers:,} in {run.connect_s:.1f} s "
        f"({handshake}), {run.connect_failed} failed; api CPU {run.connect_cpu_s:.1f} s "
        f"({run.connect_cpu_s * 1000 / max(run.connected, 1):.2f} ms per subscriber)"
    )
    grown = run.rss_connected_kb - run.rss_baseline_kb
    after = run.rss_after_kb - run.rss_baseline_kb
    n = max(run.connected, 1)
    lines.append(
        f"api RSS: {run.rss_baseline_kb / 1024:.1f} MiB after warm-up, "
        f"{run.rss_connected_kb / 1024:.1f} MiB connected (+{grown / n:.1f} KiB per "
        f"connection), {run.rss_after_kb / 1024:.1f} MiB after the events "
        f"(+{after / n:.1f} KiB per connection), peak {run.hwm_kb / 1024:.1f} MiB"
    )
    lines.append(
        f"dropped connections (closed by the api or the network before the end): "
        f"{run.dropped_end}; failed connects: {run.connect_failed}; subscriptions the api "
        f"ended: {total.ended}; events missing, wrong or errors: {errors_of(run) - total.ended} "
        f"({sum(f.late for f in run.rounds)} missing ones arrived in a later round)"
    )
    samples = run.connect_samples + [s for f in run.rounds for s in f.samples]
    samples += run.dropped_samples
    lines += [f"  e.g. {sample}" for sample in dict.fromkeys(samples[:8])]
    lines += [f"note: {note}" for note in run.notes]
    return lines


def verdict(run: Run) -> str:
    every = [latency for f in run.rounds for latency in f.latencies]
    p99 = percentile(every, 0.99)
    clean = run.dropped_end == 0 and run.connect_failed == 0 and errors_of(run) == 0
    target = TARGETS.get(run.subscribers)
    parts = [f"{run.subscribers:>6,}: p99 {_ms(p99)} ms, max {_ms(max(every, default=0))} ms"]
    if target is not None:
        met = p99 < target and clean
        parts.append(f"target p99 < {target * 1000:.0f} ms, no drops: {'met' if met else 'MISSED'}")
    hasura = clean and every and max(every) < 1.0
    parts.append(f"Hasura's bar (no errors, every event < 1 s): {'met' if hasura else 'missed'}")
    per_connection = (run.rss_connected_kb - run.rss_baseline_kb) / max(run.connected, 1)
    parts.append(f"{per_connection:.0f} KiB/conn")
    return "; ".join(parts)


# --------------------------------------------------------------------------- main


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1_000, 5_000])
    parser.add_argument("--rounds", type=int, default=5, help="events per subscriber count")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis", action="store_true", help=f"the Redis event bus ({REDIS_URL})")
    parser.add_argument("--clients", type=int, default=2, help="load processes")
    parser.add_argument(
        "--connect-concurrency", type=int, default=50, help="handshakes in flight per process"
    )
    parser.add_argument(
        "--round-timeout", type=float, default=120, help="seconds to wait for one event"
    )
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between rounds")
    parser.add_argument(
        "--compression",
        action="store_true",
        help="permessage-deflate on (uvicorn's default; `backline serve` turns it off)",
    )
    parser.add_argument(
        "--viewer-field",
        action="store_true",
        help="select the author's email too: a result per viewer, executed per subscriber",
    )
    parser.add_argument("--tracks", type=int, default=20, help="tracks in the seeded library")
    parser.add_argument(
        "--app",
        default="backend.app:create_app",
        help="the api as a uvicorn --factory (to measure a candidate change)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    if min(args.subscribers) < 1 or args.rounds < 1 or args.clients < 1:
        parser.error("--subscribers, --rounds and --clients must be at least 1")
    return args


async def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    limit = raise_fd_limit()  # the api process inherits it too
    bus = f"Redis pub/sub ({REDIS_URL})" if args.redis else "in-process"
    print("Backline subscription fan-out: bandEvents on one api process")
    header = report.machine()
    if args.database == "postgresql":
        header.append(f"PostgreSQL server {await postgres_version()}")
    somaxconn = _somaxconn()
    header.append(
        f"api: one uvicorn process ({args.app}, websockets-sansio, uvloop, "
        f"log level warning), {bus} event bus; clients: {args.clients} load processes "
        f"(websockets {_version('websockets')}, uvloop), "
        f"permessage-deflate {'on' if args.compression else 'off'}; "
        f"selection: {'per viewer (author email)' if args.viewer_field else 'shared'}; "
        f"RLIMIT_NOFILE {limit}, somaxconn {somaxconn}"
    )
    print("\n".join(header), flush=True)
    runs: list[Run] = []
    name: str | None = None
    with tempfile.TemporaryDirectory(prefix="backline-fanout-") as tmp:
        workdir = Path(tmp)
        try:
            if args.database == "sqlite":
                url = f"sqlite+aiosqlite:///{workdir / 'backline.db'}"
                label = f"SQLite {sqlite3.sqlite_version}"
            else:
                url, name = await create_postgres_database()
                label = f"PostgreSQL {await postgres_version()}"
            label += ", Redis bus" if args.redis else ", in-process bus"
            seeded = await migrate_and_seed(url, args.tracks)
            wanted = max(max(args.subscribers), WARM_UP_SUBSCRIBERS)
            member_ids = await add_members(url, seeded.band_id, wanted)
            settings = Settings(
                database_url=url, secret_key=SECRET_KEY, data_dir=workdir, access_token_minutes=240
            )
            tokens = [create_access_token(user_id=i, settings=settings)[0] for i in member_ids]
            print(f"{len(member_ids):,} more band members, one access token each", flush=True)
            env = {}
            if args.redis:
                env = {
                    "BACKLINE_REDIS_URL": REDIS_URL,
                    # Our own channels: others' runs on the same Redis never mix in.
                    "BACKLINE_REDIS_PREFIX": f"backline-bench-{uuid.uuid4().hex[:8]}",
                }
            setup = Setup(
                url=url,
                workdir=workdir,
                env=env,
                band_gid=to_global_id("Band", seeded.band_id),
                version_gid=to_global_id("TrackVersion", 1),
                admin_token=create_access_token(user_id=seeded.viewer_id, settings=settings)[0],
                tokens=tokens,
                args=args,
            )
            for count in args.subscribers:
                print(f"\n=== {count:,} subscribers ({label})", flush=True)
                run = await bench_subscribers(count, setup, label)
                runs.append(run)
                print("\n".join(table(run)), flush=True)
        finally:
            if name is not None:
                await drop_postgres_database(name)
    print(f"\n=== Summary ({time.perf_counter() - started:.0f} s in all)")
    for run in runs:
        print("\n".join(table(run)) + "\n")
    print("\n".join(verdict(run) for run in runs))


def _somaxconn() -> str:
    """The kernel's cap on a listen backlog (uvicorn's --backlog is cut to it)."""
    try:
        return Path("/proc/sys/net/core/somaxconn").read_text().strip()
    except OSError:
        return "?"


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args()))
    except KeyboardInterrupt:
        sys.exit("interrupted")
