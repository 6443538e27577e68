"""How much does GraphQL cost on the band page? Prints figures; asserts nothing about speed.

For each database (SQLite file, throw-away PostgreSQL database) it migrates to head, seeds
one band with 10,000 tracks (3 takes each, analyses, comments, reactions) by bulk Core
inserts, starts a real uvicorn server with the app plus a hand-written SQL + JSON endpoint
returning the same data (bench/handwritten.py), then measures both:
sequential p50/p95 latency, requests/second with concurrent clients, errors, and SQL
statements per request (counted in-process, with each statement's time).

    .venv/bin/python bench/graphql_page.py [--db sqlite|postgresql|both] [--tracks N]

The parts: bench/seed.py (data), bench/server.py (databases, uvicorn), bench/band_page.py
(the two endpoints, the check), bench/measure.py (figures), bench/report.py (tables).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import httpx

from backend.accounts.tokens import create_access_token
from backend.core.database import create_engine
from backend.core.migrations import upgrade_to_head
from backend.core.settings import Settings
from backend.graphql.relay import to_global_id
from bench import report
from bench.band_page import endpoints, verify
from bench.measure import Figures, breakdown, concurrent, in_process, sequential
from bench.seed import Seeded, seed
from bench.server import (
    SECRET_KEY,
    create_postgres_database,
    drop_postgres_database,
    postgres_version,
    serve,
    trusted_manifest,
)


async def migrate_and_seed(url: str, tracks: int) -> Seeded:
    """A database at head with the bench data in it."""
    engine = create_engine(url)
    try:
        started = time.perf_counter()
        await upgrade_to_head(engine)
        print(f"migrated to head in {time.perf_counter() - started:.1f} s", flush=True)
        seeded = await seed(engine, tracks=tracks, rng=random.Random(42))
    finally:
        await engine.dispose()
    rows = ", ".join(f"{count:,} {table}" for table, count in seeded.rows.items())
    print(f"seeded in {seeded.seconds:.1f} s (bulk Core inserts + ANALYZE): {rows}", flush=True)
    return seeded


async def over_http(
    url: str,
    workdir: Path,
    token: str,
    band_gid: str,
    args: argparse.Namespace,
    results: dict[str, Figures],
) -> float:
    """Latency and throughput over a real uvicorn server; returns the load average before."""
    load_before = os.getloadavg()[0]
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with (
        serve(url, workdir) as server,
        httpx.AsyncClient(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            limits=limits,
        ) as client,
    ):
        print(f"check: {await verify(client, band_gid)}", flush=True)
        # All sequential runs first, then all concurrent ones: same order as always.
        for endpoint in endpoints(band_gid):
            await sequential(
                client,
                endpoint,
                warmup=args.warmup,
                timed=args.requests,
                figures=results[endpoint.name],
            )
        for endpoint in endpoints(band_gid):
            await concurrent(
                client,
                endpoint,
                server,
                clients=args.clients,
                total=args.concurrent_requests,
                max_seconds=args.max_seconds,
                figures=results[endpoint.name],
            )
    return load_before


async def bench_database(kind: str, args: argparse.Namespace, workdir: Path) -> list[str]:
    started = time.perf_counter()
    name: str | None = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'backline.db'}"
        label = f"SQLite {sqlite3.sqlite_version} (file, WAL)"
    else:
        url, name = await create_postgres_database()
        label = f"PostgreSQL {await postgres_version()} (database {name})"
    print(f"\n=== {label}", flush=True)
    try:
        seeded = await migrate_and_seed(url, args.tracks)
        settings = Settings(
            database_url=url,
            secret_key=SECRET_KEY,
            data_dir=workdir,
            access_token_minutes=120,  # outlives the whole run
            rate_limit_points=0,
            rate_limit_anonymous_points=0,
            trusted_documents=str(trusted_manifest(workdir)),
        )
        token, _ = create_access_token(user_id=seeded.viewer_id, settings=settings)
        band_gid = to_global_id("Band", seeded.band_id)
        results = {endpoint.name: Figures() for endpoint in endpoints(band_gid)}

        await in_process(settings, band_gid, token, results)
        graphql = results["GraphQL"]
        print(
            f"GraphQL statements of one band page (in-process, median run, "
            f"{graphql.sql_ms:.1f} ms of {graphql.in_process_ms:.1f} ms):"
        )
        print("\n".join(report.statement_lines(graphql)))
        print("hand-written statements:")
        print("\n".join(report.statement_lines(results["hand-written"])), flush=True)
        if args.breakdown:
            await breakdown(settings, band_gid, token)

        load_before = await over_http(url, workdir, token, band_gid, args, results)
    finally:
        if name is not None:
            await drop_postgres_database(name)
    heading = report.title(
        label.split(" (")[0], args.tracks, time.perf_counter() - started, load_before
    )
    lines = report.table(heading, results, args)
    print("\n" + "\n".join(lines), flush=True)
    return lines


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--tracks", type=int, default=10_000, help="tracks to seed (≥ 51)")
    parser.add_argument("--warmup", type=int, default=20, help="sequential warm-up requests")
    parser.add_argument("--requests", type=int, default=200, help="sequential timed requests")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--concurrent-requests", type=int, default=400, help="requests shared by the clients"
    )
    parser.add_argument("--max-seconds", type=float, default=15, help="cap on each concurrent run")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also print what each part of the track selection costs (in-process CPU)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.tracks < 51:
        parser.error("--tracks must be at least 51 (a page of 50 and a next page)")
    return args


async def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print("Backline band page: GraphQL vs hand-written SQL + JSON")
    header = report.machine()
    if "postgresql" in kinds:
        header.append(f"PostgreSQL server {await postgres_version()}")
    header.append(
        "server: one uvicorn process, no access log"
        f"; client: httpx in this process; {args.tracks:,} tracks"
    )
    print("\n".join(header), flush=True)
    tables: list[list[str]] = []
    # One temp dir for the SQLite file, server logs and data_dir; gone at the end, whatever.
    with tempfile.TemporaryDirectory(prefix="backline-bench-") as tmp:
        for kind in kinds:
            workdir = Path(tmp) / kind
            workdir.mkdir()
            tables.append(await bench_database(kind, args, workdir))
    print(f"\n=== Summary ({time.perf_counter() - started:.0f} s in all)")
    print("\n\n".join("\n".join(lines) for lines in tables))


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args()))
    except KeyboardInterrupt:
        # The finally blocks have run: server stopped, database dropped, temp dir removed.
        sys.exit("interrupted")
