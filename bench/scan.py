"""How fast does a scan index a rehearsal tree? Prints figures; asserts nothing about speed.

A generated tree (bench/scan_tree.py: 20,000 small WAVs in 200 dated sessions, a few
non-audio files), cached in /tmp/backline-bench-tree and reused. For each database (an
SQLite file, or a throw-away PostgreSQL database) it migrates a fresh database, makes a
user, a band and a source through the services, and runs scans the way the worker does:
``run_scan`` on a QUEUED job row, each in a process of its own (bench/scan_child.py) so
that the peak RSS is the scan's.

  local folder        first scan, unchanged re-scans, then 1 % of the takes moved or
                      renamed and a re-scan (did every moved take keep its version?)
  WebDAV (loopback)   the tree served by wsgidav in another process (bench/scan_dav.py),
                      without and with Nextcloud-like folder etags: first scan, re-scans
  watched folder      the real app under uvicorn (embedded workers, in-process bus), a
                      LOCAL_FOLDER source with watch=true holding the tree, a bandEvents
                      subscriber over a websocket: a WAV written into the folder → its
                      VersionAdded event, repeated

    .venv/bin/python bench/scan.py [--database sqlite|postgresql|both] [--files N]

Options: --files/--sessions size the tree; --webdav-files (4,000 by default: wsgidav on
loopback serves a few hundred small GETs a second, so 20,000 would take minutes per
scan); --rescans, --moved, --watch-repeats; --only local|webdav|watch (repeatable);
--breakdown prints where each scan's wall time went (per scanner function), --statements
its most frequent SQL statements, --profile DIR a cProfile of each scan process.
The default run (SQLite) takes 5-9 minutes on 2 busy vCPUs; the first scans dominate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from backend.accounts import service as accounts_service
from backend.bands import service as bands_service
from backend.bands.access import BandAccess
from backend.bands.models import BandRole
from backend.core.database import create_engine, create_session_factory
from backend.core.migrations import upgrade_to_head
from backend.core.settings import Settings
from backend.jobs import service as jobs_service
from backend.jobs.models import JobKind
from backend.library import sources, watching
from backend.library.models import SourceKind, TrackVersion, VersionStatus
from bench import report
from bench.scan_tree import Tree, build, linked_copy, move_some, patched
from bench.server import (
    ROOT,
    SECRET_KEY,
    Server,
    create_postgres_database,
    drop_postgres_database,
    postgres_version,
    serve,
)
from tests.graphql_client import REGISTER
from tests.live_server import connect, receive, subscribe
from tests.webdav_server import DEFAULT_PASSWORD, DEFAULT_USER

TARGET_FIRST = 2_000  # files/s, the ingest issue's targets
TARGET_RESCAN = 50_000
CHILD_TIMEOUT = 1_800  # seconds for one scan process

BAND_EVENTS = """subscription($id: ID!) { bandEvents(bandId: $id) {
  __typename
  ... on VersionAdded { version { path } }
  ... on JobUpdated { job { status } }
} }"""
JOBS = """query($b: ID!) { band(id: $b) {
  all: jobs(first: 1) { totalCount nodes { status total added startedAt finishedAt } }
  busy: jobs(status: [QUEUED, RUNNING]) { totalCount } } }"""


class HarnessError(RuntimeError):
    """The benchmark itself went wrong (not a slow figure): exit non-zero."""


@dataclass
class Row:
    database: str
    source: str
    phase: str
    result: dict[str, Any]
    note: str = ""

    @property
    def files(self) -> int:
        return int(self.result["job"]["total"] or 0)

    @property
    def seconds(self) -> float:
        return float(self.result["seconds"])

    @property
    def statements(self) -> int:
        return sum(self.result["statements"].values())


@dataclass
class Watch:
    database: str
    files: int
    catch_up_seconds: float | None = None
    app_peak_rss_kb: int | None = None
    latencies: list[float] = field(default_factory=list)
    to_running: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------- databases


@contextlib.asynccontextmanager
async def fresh_database(kind: str, workdir: Path, label: str) -> AsyncIterator[str]:
    """A migrated, empty database: its URL; a PostgreSQL one is dropped afterwards."""
    name = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / f'{label}.db'}"
    else:
        url, name = await create_postgres_database()
    try:
        engine = create_engine(url)
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()
        yield url
    finally:
        if name is not None:
            await drop_postgres_database(name)


class Library:
    """The parent's view of one database: setup through the services, job rows, checks."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self.engine = create_engine(url)
        self.session_factory = create_session_factory(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def band_with_source(
        self,
        kind: SourceKind,
        root: str,
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> tuple[int, int]:
        async with self.session_factory() as db:
            user = await accounts_service.register(
                db_session=db, email="bench@example.org", password="correct horse", handle="bench"
            )
            band = await bands_service.create(
                db_session=db, access=BandAccess(user_id=user.id), name="Bench band"
            )
            access = BandAccess(user_id=user.id, roles={band.id: BandRole.ADMIN})
            source = await sources.add(
                db_session=db,
                access=access,
                settings=self.settings,
                new=sources.NewSource(
                    band_id=band.id,
                    kind=kind,
                    name="bench tree",
                    root=root,
                    username=username,
                    password=password,
                ),
            )
            await db.commit()
            return band.id, source.id

    async def queued_scan(self, band_id: int, source_id: int) -> int:
        async with self.session_factory() as db:
            job = await jobs_service.create(
                db_session=db, band_id=band_id, kind=JobKind.SCAN, source_id=source_id
            )
            await db.commit()
            return job.id

    async def versions(self, source_id: int) -> dict[str, tuple[int, VersionStatus]]:
        async with self.session_factory() as db:
            rows = await db.execute(
                select(TrackVersion.path, TrackVersion.id, TrackVersion.status).where(
                    TrackVersion.source_id == source_id
                )
            )
            return {path: (vid, status) for path, vid, status in rows}


# --------------------------------------------------------------------------- one scan


async def scan_in_child(
    library: Library,
    band_id: int,
    source_id: int,
    args: argparse.Namespace,
    label: str,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """Run one scan in a fresh process; its figures (bench/scan_child.py), with the CPU
    time the WebDAV server process used meanwhile when there is one."""
    job_id = await library.queued_scan(band_id, source_id)
    server_cpu = _cpu_seconds(server_pid) if server_pid else 0.0
    profile = None
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        profile = str(args.profile / f"{label}.pstats")
    spec = {
        "database_url": library.url,
        "settings": {
            "database_url": library.url,
            "secret_key": SECRET_KEY,
            "data_dir": str(library.settings.data_dir),
            "allowed_roots": library.settings.allowed_roots,
        },
        "job_id": job_id,
        "profile": profile,
        "breakdown": args.breakdown,
        "statements": args.statements,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.scan_child",
        json.dumps(spec),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), CHILD_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise HarnessError(f"{label}: the scan took more than {CHILD_TIMEOUT} s") from None
    if process.returncode != 0:
        tail = "\n".join(err.decode(errors="replace").splitlines()[-25:])
        raise HarnessError(f"{label}: the scan process failed ({process.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    if server_pid:
        result["server_cpu_seconds"] = _cpu_seconds(server_pid) - server_cpu
    if result["job"]["status"] != "SUCCEEDED":
        raise HarnessError(f"{label}: the scan ended {result['job']}")
    if result["shapes"]:
        print(f"  {label}: the most frequent statements")
        for shape, count in result["shapes"].items():
            print(f"    {count:>7,}  {shape}")
    if result["phases"]:
        print(f"  where {label}'s {result['seconds']:.2f} s went (wall s, calls):")
        for name, (seconds, calls) in result["phases"].items():
            print(f"    {name:<44}{seconds:>8.2f}{calls:>8}")
    if profile:
        print(f"  profile of {label} ({profile}), by own time:")
        pstats.Stats(profile).sort_stats("tottime").print_stats(18)
    return result


def _cpu_seconds(pid: int) -> float:
    return Server("", pid).cpu_seconds()


def _line(row: Row) -> str:
    job = row.result["job"]
    return (
        f"  {row.source} / {row.phase}: {row.seconds:.2f} s, {row.files:,} files, "
        f"added {job['added']:,}, updated {job['updated']:,}, skipped {job['skipped']:,}, "
        f"failed {job['failed']:,}; {row.statements:,} statements {row.result['statements']}"
        + (f"; requests {row.result['requests']}" if row.result["requests"] else "")
        + (
            f"; WebDAV server CPU {row.result['server_cpu_seconds']:.2f} s"
            if "server_cpu_seconds" in row.result
            else ""
        )
    )


async def rescans(
    library: Library,
    band_id: int,
    source_id: int,
    args: argparse.Namespace,
    label: str,
    database: str,
    source: str,
    server_pid: int | None = None,
) -> Row:
    """Unchanged re-scans; the median one is kept (all are printed)."""
    results = []
    for number in range(args.rescans):
        result = await scan_in_child(
            library, band_id, source_id, args, f"{label}-rescan{number}", server_pid
        )
        if result["job"]["added"] or result["job"]["updated"]:
            raise HarnessError(f"{label}: an unchanged re-scan changed something: {result['job']}")
        results.append(result)
    ordered = sorted(results, key=lambda result: result["seconds"])
    times = ", ".join(f"{result['seconds']:.3f}" for result in results)
    row = Row(
        database,
        source,
        "unchanged re-scan",
        ordered[len(ordered) // 2],
        note=f"median of {len(results)}: {times} s",
    )
    print(_line(row) + f" [{row.note}]", flush=True)
    return row


# --------------------------------------------------------------------------- local


async def bench_local(
    kind: str, label: str, tree: Tree, args: argparse.Namespace, workdir: Path
) -> list[Row]:
    copy = linked_copy(tree.root, workdir / f"{kind}-local-tree")
    settings = _settings(workdir, copy)
    rows = []
    async with fresh_database(kind, workdir, "local") as url:
        library = Library(url, settings)
        try:
            band_id, source_id = await library.band_with_source(SourceKind.LOCAL_FOLDER, str(copy))
            result = await scan_in_child(library, band_id, source_id, args, f"{kind}-local-first")
            rows.append(Row(label, "local folder", "first scan", result))
            print(_line(rows[-1]), flush=True)
            rows.append(
                await rescans(
                    library, band_id, source_id, args, f"{kind}-local", label, "local folder"
                )
            )

            before = await library.versions(source_id)
            moves = move_some(copy, tree.audio, args.moved)
            result = await scan_in_child(library, band_id, source_id, args, f"{kind}-local-moved")
            after = await library.versions(source_id)
            kept = sum(1 for old, new in moves if after.get(new, (None,))[0] == before[old][0])
            missing = sum(1 for _, status in after.values() if status == VersionStatus.MISSING)
            note = (
                f"{kept}/{len(moves)} moved takes kept their version id, "
                f"{len(moves) - kept} new; {len(after):,} versions, {missing} MISSING"
            )
            rows.append(Row(label, "local folder", f"{len(moves)} moved", result, note))
            print(_line(rows[-1]) + f" [{note}]", flush=True)
        finally:
            await library.close()
    shutil.rmtree(copy, ignore_errors=True)
    return rows


def _settings(workdir: Path, allowed: Path) -> Settings:
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    return Settings(secret_key=SECRET_KEY, data_dir=data, allowed_roots=str(allowed))


# --------------------------------------------------------------------------- WebDAV


@contextlib.asynccontextmanager
async def dav_server(root: Path, folder_etags: bool) -> AsyncIterator[tuple[str, int]]:
    command = [sys.executable, "-m", "bench.scan_dav", str(root)]
    if folder_etags:
        command.append("--folder-etags")
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if not line:
            raise HarnessError("the WebDAV server did not start")
        yield line.decode().strip(), process.pid
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def bench_webdav(
    kind: str, label: str, tree: Tree, args: argparse.Namespace, workdir: Path
) -> list[Row]:
    rows = []
    for folder_etags in (False, True):
        name = "WebDAV, folder etags" if folder_etags else "WebDAV"
        tag = f"{kind}-dav{'-etags' if folder_etags else ''}"
        settings = _settings(workdir, workdir)
        async with (
            dav_server(tree.root, folder_etags) as (share, server_pid),
            fresh_database(kind, workdir, tag) as url,
        ):
            library = Library(url, settings)
            try:
                band_id, source_id = await library.band_with_source(
                    SourceKind.WEBDAV, share, username=DEFAULT_USER, password=DEFAULT_PASSWORD
                )
                result = await scan_in_child(
                    library, band_id, source_id, args, f"{tag}-first", server_pid
                )
                rows.append(Row(label, name, "first scan", result))
                print(_line(rows[-1]), flush=True)
                rows.append(
                    await rescans(library, band_id, source_id, args, tag, label, name, server_pid)
                )
            finally:
                await library.close()
    return rows


# --------------------------------------------------------------------------- watching


async def bench_watch(
    kind: str, label: str, tree: Tree, args: argparse.Namespace, workdir: Path
) -> Watch:
    root = linked_copy(tree.root, workdir / f"{kind}-watched-tree")
    data = workdir / f"{kind}-app-data"
    data.mkdir()
    watch = Watch(label, len(tree.audio))
    template = (root / tree.audio[0]).read_bytes()
    async with (
        fresh_database(kind, workdir, "watch") as url,
        serve(
            url,
            data,
            app="backend.app:create_app",
            env={"BACKLINE_ALLOWED_ROOTS": str(root), "BACKLINE_ACCESS_TOKEN_MINUTES": "240"},
        ) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=60) as client,
    ):
        token = await _graphql(
            client,
            None,
            REGISTER,
            {"input": {"email": "w@example.org", "password": "correct horse", "handle": "w"}},
        )
        token = token["register"]["accessToken"]
        band_id = (
            await _graphql(client, token, 'mutation { createBand(input: {name: "Watch"}) { id } }')
        )["createBand"]["id"]
        add = """mutation($b: ID!, $r: String!) { addSource(input: {bandId: $b,
          kind: LOCAL_FOLDER, name: "watched", root: $r, watch: true}) { id } }"""
        started = time.perf_counter()
        await _graphql(client, token, add, {"b": band_id, "r": str(root)})
        # The watcher catches up with what is there (a scan of the whole tree) first.
        last = await _idle(client, token, band_id, limit=args.watch_timeout * 20)
        watch.catch_up_seconds = time.perf_counter() - started
        print(
            f"  watched folder: catch-up scan of {last['total']:,} files done "
            f"{watch.catch_up_seconds:.1f} s after addSource ({last['added']:,} added)",
            flush=True,
        )
        watch.app_peak_rss_kb = _peak_rss_kb(server.pid)
        host = server.base_url.removeprefix("http://")
        socket_ = await connect(host, token)
        try:
            await subscribe(socket_, "band", BAND_EVENTS, {"id": band_id})
            await asyncio.sleep(0.3)
            folder = root / tree.audio[0].split("/", 1)[0] / "watched song"
            folder.mkdir()
            for number in range(args.watch_repeats + 1):  # the first one warms up
                path = folder / f"take{number:02d}.wav"
                relative = path.relative_to(root).as_posix()
                written = time.perf_counter()
                path.write_bytes(patched(template, 50_000_000 + number))
                running, added = await _until_added(socket_, relative, written, args.watch_timeout)
                if number:
                    watch.latencies.append(added)
                    if running is not None:
                        watch.to_running.append(running)
                print(
                    f"  {'warm-up' if not number else f'drop {number}'}: VersionAdded after "
                    f"{added * 1000:.0f} ms (scan job running after "
                    f"{(running or 0) * 1000:.0f} ms)",
                    flush=True,
                )
                await asyncio.sleep(0.5)
        finally:
            await socket_.close()
    shutil.rmtree(root, ignore_errors=True)
    return watch


async def _graphql(
    client: httpx.AsyncClient,
    token: str | None,
    query: str,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    body = response.json()
    if body.get("errors") or not body.get("data"):
        raise HarnessError(f"GraphQL failed: {body}")
    return dict(body["data"])


async def _idle(client: httpx.AsyncClient, token: str, band_id: str, limit: float) -> dict:
    """Wait until the band has had a scan and none is queued or running: the newest job."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        band = (await _graphql(client, token, JOBS, {"b": band_id}))["band"]
        if band["all"]["totalCount"] and not band["busy"]["totalCount"]:
            newest = band["all"]["nodes"][0]
            if newest["status"] != "SUCCEEDED":
                raise HarnessError(f"the catch-up scan ended {newest}")
            return dict(newest)
        await asyncio.sleep(0.25)
    raise HarnessError(f"the watched folder's first scan did not end within {limit} s")


async def _until_added(
    socket_: Any, path: str, written: float, limit: float
) -> tuple[float | None, float]:
    """Seconds from the write to the scan job running and to the take's VersionAdded;
    then waits for that job to end, so the next file finds the watcher idle."""
    deadline = written + limit
    running = added = None
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise HarnessError(f"no VersionAdded for {path} within {limit} s")
        message = await receive(socket_, left)
        now = time.perf_counter()
        if message["type"] in {"ping", "pong", "ka", "connection_ack"}:
            continue
        if message["type"] != "next":
            raise HarnessError(f"bandEvents: {message}")
        event = message["payload"]["data"]["bandEvents"]
        if event["__typename"] == "JobUpdated":
            status = event["job"]["status"]
            if status == "RUNNING" and running is None:
                running = now - written
            if status in {"SUCCEEDED", "FAILED", "CANCELLED"} and added is not None:
                return running, added
        elif event["__typename"] == "VersionAdded" and event["version"]["path"] == path:
            added = now - written


def _peak_rss_kb(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


# --------------------------------------------------------------------------- report


def _mb(kb: int | None) -> str:
    return f"{kb / 1024:.0f}" if kb else "-"


def table(rows: list[Row], watches: list[Watch], tree: Tree, dav_tree: Tree) -> list[str]:
    head = (
        f"{'database':<11}{'source':<22}{'phase':<19}{'files':>8}{'s':>8}{'files/s':>9}"
        f"{'CPU s':>7}{'SQL':>8}{'SQL/1k':>8}{'HTTP':>7}{'RSS MB':>12}  result"
    )
    lines = [head]
    for row in rows:
        job = row.result["job"]
        requests = sum(row.result["requests"].values())
        rss = f"{_mb(row.result['peak_rss_kb'])} ({_mb(row.result['rss_before_kb'])})"
        if "moved" in row.phase:
            outcome = row.note
        elif row.phase == "first scan":
            outcome = f"{job['added']:,} added, {job['skipped']} skipped, {job['failed']} failed"
        else:
            outcome = f"{job['added']} added, {job['updated']} updated; {row.note}"
        if "server_cpu_seconds" in row.result:
            outcome += f"; server CPU {row.result['server_cpu_seconds']:.1f} s"
        lines.append(
            f"{row.database:<11}{row.source:<22}{row.phase:<19}{row.files:>8,}"
            f"{row.seconds:>8.2f}{row.files / row.seconds:>9,.0f}"
            f"{row.result['cpu_seconds']:>7.2f}{row.statements:>8,}"
            f"{row.statements * 1000 / max(row.files, 1):>8.1f}"
            f"{requests if requests else '-':>7}{rss:>12}  {outcome}"
        )
    shared = "WebDAV" in {row.source.split(",")[0] for row in rows}
    lines.append(
        f"files: what the job counted (audio + other visible files); local tree "
        f"{len(tree.audio):,} WAVs + {tree.other} other files in {tree.folders:,} folders "
        f"({tree.bytes / 1e6:.0f} MB)"
        + (f"; WebDAV tree {len(dav_tree.audio):,} + {dav_tree.other}" if shared else "")
    )
    lines.append(
        "s: wall time of run_scan; CPU s: the scan process's user+sys over the same span "
        "(SQLite's work included, PostgreSQL's and the WebDAV server's not)"
    )
    lines.append(
        "SQL: statements on the scan's engine (before_cursor_execute); HTTP: PROPFIND + GET "
        "requests; RSS MB: peak (VmHWM) of the scan process, and (in brackets) its RSS "
        "after imports, before the scan"
    )
    for watch in watches:
        if not watch.latencies:
            continue
        latencies = sorted(watch.latencies)
        lines.append(
            f"{watch.database}: watched folder of {watch.files:,} WAVs, file written → "
            f"VersionAdded at a bandEvents subscriber, {len(latencies)} files: "
            f"p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"min {latencies[0] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; "
            f"of which until the scan job runs: p50 "
            f"{statistics.median(watch.to_running or [0]) * 1000:.0f} ms"
        )
        lines.append(
            f"  (watcher: awatch step {watching.STEP_MS} ms / debounce {watching.DEBOUNCE_MS} ms, "
            f"then the file must keep its size {watching.SETTLE_SECONDS:g} s; the scan walks "
            f"the whole folder); catch-up scan after addSource {watch.catch_up_seconds:.1f} s; "
            f"app process peak RSS {_mb(watch.app_peak_rss_kb)} MB"
        )
    lines.append(
        f"targets: first scan ≥ {TARGET_FIRST:,} files/s, unchanged re-scan ≥ "
        f"{TARGET_RESCAN:,} files/s locally; anchors: Polaris ≈1,200/s first, ≈47,000/s "
        f"re-walk; gonic ≈1,700 tracks/s incremental"
    )
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--files", type=int, default=20_000, help="WAVs in the tree")
    parser.add_argument("--sessions", type=int, default=200, help="dated session folders")
    parser.add_argument(
        "--webdav-files",
        type=int,
        default=4_000,
        help="WAVs in the WebDAV tree (0: as --files); 4,000 by default, as wsgidav on "
        "loopback serves a few hundred small GETs a second",
    )
    parser.add_argument("--rescans", type=int, default=3, help="unchanged re-scans (median kept)")
    parser.add_argument("--moved", type=float, default=0.01, help="share of takes moved")
    parser.add_argument("--watch-repeats", type=int, default=10, help="files dropped (0: skip)")
    parser.add_argument("--watch-timeout", type=float, default=60, help="seconds per file")
    parser.add_argument(
        "--only",
        choices=["local", "webdav", "watch"],
        action="append",
        help="run only these parts (repeatable; default all)",
    )
    parser.add_argument(
        "--cache", type=Path, default=Path("/tmp/backline-bench-tree"), help="where trees are kept"
    )
    parser.add_argument(
        "--profile", type=Path, help="cProfile each scan process into this folder, print the top"
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="time the scan's phases in each scan process (wall time per function)",
    )
    parser.add_argument(
        "--statements", action="store_true", help="print each scan's most frequent statements"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.files < 1 or args.sessions < 1:
        parser.error("--files and --sessions must be positive")
    return args


def _tree(args: argparse.Namespace, files: int) -> Tree:
    sessions = max(1, round(args.sessions * files / args.files))
    tree = build(args.cache, files, sessions)
    how = f"built in {tree.built_seconds:.1f} s" if tree.built_seconds else "from the cache"
    print(
        f"tree {tree.root}: {len(tree.audio):,} WAVs + {tree.other} other files, "
        f"{tree.folders:,} folders, {tree.bytes / 1e6:.0f} MB ({how})",
        flush=True,
    )
    return tree


async def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    parts = set(args.only or ["local", "webdav", "watch"])
    print("Backline scanning benchmark")
    header = report.machine()
    if "postgresql" in kinds:
        header.append(f"PostgreSQL server {await postgres_version()}")
    print("\n".join(header), flush=True)
    tree = _tree(args, args.files)
    dav_files = min(args.webdav_files or args.files, args.files)
    dav_tree = tree if dav_files == args.files or "webdav" not in parts else _tree(args, dav_files)
    rows: list[Row] = []
    watches: list[Watch] = []
    failure: HarnessError | None = None
    with tempfile.TemporaryDirectory(prefix="backline-scan-bench-") as tmp:
        try:
            for kind in kinds:
                label = "SQLite" if kind == "sqlite" else "PostgreSQL"
                workdir = Path(tmp) / kind
                workdir.mkdir()
                print(f"\n=== {label} (1-min load average {os.getloadavg()[0]:.2f})", flush=True)
                if "local" in parts:
                    rows += await bench_local(kind, label, tree, args, workdir)
                if "webdav" in parts:
                    print(f"  WebDAV (load {os.getloadavg()[0]:.2f})", flush=True)
                    rows += await bench_webdav(kind, label, dav_tree, args, workdir)
                if "watch" in parts and args.watch_repeats > 0:
                    print(f"  watched folder (load {os.getloadavg()[0]:.2f})", flush=True)
                    watches.append(await bench_watch(kind, label, tree, args, workdir))
        except HarnessError as error:  # print what was measured, then fail
            failure = error
    print(
        f"\n=== Summary ({time.perf_counter() - started:.0f} s in all; "
        f"1-min load average now {os.getloadavg()[0]:.2f})"
    )
    print("\n".join(table(rows, watches, tree, dav_tree)))
    if failure is not None:
        raise failure


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args()))
    except HarnessError as error:
        sys.exit(f"harness error: {error}")
    except KeyboardInterrupt:
        sys.exit("interrupted")
