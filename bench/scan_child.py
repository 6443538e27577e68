"""One scan, run the way the worker runs it, in a process of its own so that its peak RSS
is the scan's: ``python -m bench.scan_child '<json spec>'`` prints one JSON line.

The spec names the database, the settings and the job (created QUEUED by the parent).
The process builds an engine and a session factory as ``workers.runtime`` does, counts
every statement with a ``before_cursor_execute`` listener, publishes to an in-process
counter (no subscribers: the embedded bus's cost without a listener), counts WebDAV
requests by wrapping the client's two request methods, and calls ``run_scan``."""

from __future__ import annotations

import asyncio
import cProfile
import json
import re
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from dramatiq.brokers.stub import StubBroker
from sqlalchemy import event

# Every table on the metadata, as workers/main.py has them (a Job's flush needs users).
import backend.models  # noqa: F401
from backend.core.database import create_engine, create_session_factory
from backend.core.settings import Settings
from backend.jobs.models import Job
from backend.jobs.queue import JobQueue
from backend.library import webdav
from backend.library.scanner import ScanContext, run_scan


def _shape(statement: str) -> str:
    """A statement's kind and tables, short: which code sent it."""
    words = re.sub(r"\s+", " ", statement).strip()
    words = re.sub(r"^SELECT .*? FROM ", "SELECT … FROM ", words)
    words = re.sub(r"\(.*", "(…", words) if words.startswith("INSERT") else words
    return words[:110]


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# Where a scan's wall time goes (--breakdown); the indented ones are parts of the one
# above them. The walk and load_index run at once, and a batch is inspected while the one
# before it is written, so those rows overlap the others.
TIMED = [
    ("walk", "reader", "walk"),
    ("load_folder_markers", "scan", "load_folder_markers"),
    ("load_index", "scan", "load_index"),
    ("inspect (open, sniff, tags, fingerprint)", "reader", "inspect"),
    ("_write_batch (one transaction a batch)", "scan", "_write_batch"),
    ("  _insert_new_takes", "scan", "_insert_new_takes"),
    ("    band_track_ids (once a scan)", "library", "band_track_ids"),
    ("    track_ids_for_titles", "library", "track_ids_for_titles"),
    ("    session_ids_for_dates", "library", "session_ids_for_dates"),
    ("    touch_recorded", "library", "touch_recorded"),
    ("commit (any)", "session", "commit"),
    ("_progress (job row + events)", "scan", "_progress"),
    ("_publish_versions", "scan", "_publish_versions"),
    ("_save_folder_markers", "scan", "_save_folder_markers"),
    ("_end", "scan", "_end"),
]


def _time_phases(totals: dict[str, list[float]]) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    from backend.library import service as library_service
    from backend.library.scanner import scan as scan_module
    from backend.library.scanner.local import LocalReader
    from backend.library.scanner.remote import WebDavReader

    def timed(name: str, function: Any) -> Any:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                entry = totals.setdefault(name, [0.0, 0])
                entry[0] += time.perf_counter() - started
                entry[1] += 1

        return wrapper

    owners: dict[str, list[Any]] = {
        "reader": [LocalReader, WebDavReader],
        "scan": [scan_module],
        "library": [library_service],
        "session": [AsyncSession],
    }
    for name, owner, attribute in TIMED:
        for target in owners[owner]:
            setattr(target, attribute, timed(name, getattr(target, attribute)))


def _count_requests(counts: Counter[str]) -> None:
    listing, read_range = webdav.WebDavClient.listing, webdav.WebDavClient.read_range

    async def counted_listing(self: webdav.WebDavClient, path: str = "") -> Any:
        counts["PROPFIND"] += 1
        return await listing(self, path)

    async def counted_read_range(
        self: webdav.WebDavClient, path: str, start: int, length: int
    ) -> bytes:
        counts["GET"] += 1
        return await read_range(self, path, start, length)

    webdav.WebDavClient.listing = counted_listing  # type: ignore[method-assign]
    webdav.WebDavClient.read_range = counted_read_range  # type: ignore[method-assign]


async def scan(spec: dict[str, Any]) -> dict[str, Any]:
    settings = Settings(**spec["settings"])
    engine = create_engine(spec["database_url"])
    statements: Counter[str] = Counter()
    shapes: Counter[str] = Counter()

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements[statement.lstrip().split(None, 1)[0].upper()] += 1
        if spec.get("statements"):
            shapes[_shape(statement)] += 1

    events: Counter[str] = Counter()

    async def publish(channel: str, message: dict[str, Any]) -> None:
        events[message.get("type") or channel.split(":", 1)[0]] += 1

    requests: Counter[str] = Counter()
    _count_requests(requests)
    phases: dict[str, list[float]] = {}
    if spec.get("breakdown"):
        _time_phases(phases)
    # Media work is queued as a scan queues it (a PROBE job row per new or changed take,
    # its message sent to a broker) but not run: no worker consumes this stub broker.
    media_broker = StubBroker()
    media_broker.declare_queue("media")
    ctx = ScanContext(
        session_factory=create_session_factory(engine),
        settings=settings,
        publish=publish,
        queue=JobQueue(media_broker),
    )
    # A connection is opened before the clock starts, as a worker's pool has one.
    async with engine.connect():
        pass
    rss_before = _status_kb("VmRSS")
    profiler = cProfile.Profile() if spec.get("profile") else None
    cpu_before = time.process_time()
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    await run_scan(ctx, spec["job_id"])
    if profiler:
        profiler.disable()
        profiler.dump_stats(spec["profile"])
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    async with ctx.session_factory() as db:
        job = await db.get(Job, spec["job_id"])
        assert job is not None
        outcome = {
            name: getattr(job, name)
            for name in ("processed", "total", "added", "updated", "skipped", "failed", "message")
        }
        outcome["status"] = job.status.value
    await engine.dispose()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "statements": dict(statements),
        "events": dict(events),
        "requests": dict(requests),
        "shapes": dict(shapes.most_common(12)),
        "phases": {name: phases[name] for name, _, _ in TIMED if name in phases},
        "job": outcome,
        "rss_before_kb": rss_before,
        # VmHWM, the peak RSS of this process's memory since exec. Not ru_maxrss: Linux
        # carries that over an exec, so a child forked from the (bigger) parent would
        # report the parent's size.
        "peak_rss_kb": _status_kb("VmHWM"),
        "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(scan(spec))), flush=True)


if __name__ == "__main__":
    main()
