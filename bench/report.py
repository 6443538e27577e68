"""What the benchmark prints: the machine, one table per database (the layout RESULTS.md
copies) and the statements of one request."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sqlite3
import sys
from pathlib import Path

from bench.measure import IN_PROCESS_REPEATS, REPLAYS, Figures

HEADINGS = ("p50 ms", "p95 ms", "rps", "CPU ms/req", "errors", "SQL/req", "SQL ms", "in-proc ms")


def machine() -> list[str]:
    """CPUs, memory, Python and SQLite: what the figures depend on besides the code."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return [
        f"CPUs (nproc): {len(os.sched_getaffinity(0))}, {cpu}",
        f"memory: {memory}",
        f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}",
    ]


def title(label: str, tracks: int, seconds: float, load_before: float) -> str:
    """A table's first line; the load average tells how busy the shared machine was."""
    return (
        f"{label} — {tracks:,} tracks, band page of 50 "
        f"({seconds:.0f} s for this database; 1-min load average "
        f"{load_before:.2f} before measuring, {os.getloadavg()[0]:.2f} after)"
    )


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def _row(name: str, cells: tuple[str, ...], kb: str = "") -> str:
    return f"{name:<14}" + "".join(f"{cell:>11}" for cell in cells) + (f"{kb:>7}" if kb else "")


def table(heading: str, results: dict[str, Figures], args: argparse.Namespace) -> list[str]:
    g, h = results["GraphQL"], results["hand-written"]
    lines = [heading, _row("endpoint", HEADINGS, "KB")]
    for name, f in results.items():
        values = (
            f"{f.p50_ms:.1f}",
            f"{f.p95_ms:.1f}",
            f"{f.rps:.1f}",
            f"{f.cpu_ms:.1f}",
            f"{f.errors}",
            f"{f.statements}",
            f"{f.sql_ms:.1f}",
            f"{f.in_process_ms:.1f}",
        )
        lines.append(_row(name, values, f"{f.response_kb:.1f}"))
    ratios = (
        _ratio(g.p50_ms, h.p50_ms),
        _ratio(g.p95_ms, h.p95_ms),
        _ratio(g.rps, h.rps),
        _ratio(g.cpu_ms, h.cpu_ms),
        "",
        _ratio(g.statements, h.statements),
        _ratio(g.sql_ms, h.sql_ms),
        _ratio(g.in_process_ms, h.in_process_ms),
    )
    lines.append(_row("GraphQL/hand", ratios))
    lines.append(
        f"p50/p95: {args.requests} sequential requests after {args.warmup} warm-up; rps and "
        f"server CPU ms/req: {args.clients} concurrent clients, "
        f"{g.concurrent_requests} + {h.concurrent_requests} requests "
        f"(cap {args.concurrent_requests} each or {args.max_seconds:g} s)"
    )
    lines.append(
        f"SQL/req, in-proc ms (ASGI, no network), KB: median of {IN_PROCESS_REPEATS} in-process "
        f"requests; SQL ms: that request's statements replayed alone (best of {REPLAYS} each)"
    )
    return lines


def _short(statement: str, width: int = 104) -> str:
    sql = re.sub(r"\s+", " ", statement).strip()
    # The select list of an ORM query is every column; the FROM/WHERE tells which loader.
    sql = re.sub(r"^SELECT (.{45,}?) FROM ", "SELECT … FROM ", sql, count=1)
    return sql if len(sql) <= width else sql[: width - 1] + "…"


def statement_lines(figures: Figures) -> list[str]:
    return [
        f"  {seconds * 1000:6.2f} ms  {_short(sql)}" for seconds, sql in figures.statement_times
    ]
