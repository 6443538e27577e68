"""`backline scan PATH --band BAND`: index a folder for a band from a shell on the server,
through the same path as the `scanSource` mutation:

    find_or_add_local (the band's source for the folder) ─► request_scan (job row, message)
    ─► actor library.scan_source, in threads of this process (workers.embedded), or in
       `backline worker` processes when BACKLINE_REDIS_URL is set
    ─► job:{id} events ─► a progress bar on stderr ─► a summary on stdout

Exit codes: 0 the scan succeeded, 1 it failed (or someone cancelled it), 2 refused before
scanning (database not migrated, unknown band, folder not allowed), 130 Ctrl-C (the scan
is cancelled; what it indexed stays)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import dramatiq
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.bands import service as bands_service
from backend.bands.models import Band
from backend.core.database import create_engine, create_session_factory
from backend.core.errors import BadUserInput, ServiceUnavailable
from backend.core.events import EventBus, Subscription, create_event_bus
from backend.core.migrations import pending_migrations
from backend.core.settings import Settings
from backend.jobs import service as jobs_service
from backend.jobs.models import Job
from backend.jobs.progress_bar import ProgressBar
from backend.jobs.queue import JobQueue, JobRef
from backend.library import sources
from backend.library.scanner.requests import request_scan

EXIT_SUCCEEDED, EXIT_FAILED, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 130
POLL_SECONDS = 2.0  # read the job row when no event came (a scan run by another process)
CANCEL_WAIT_SECONDS = 15.0  # after Ctrl-C, how long to wait for the scan to stop
ERRORS_SHOWN = 20
BANDS_SHOWN = 30


class Refused(Exception):
    """Nothing was scanned; the message says why and what to do."""


@dataclass(frozen=True)
class ScanRequest:
    path: str
    band: str  # slug or id
    name: str | None = None  # for a new source; default: the folder's name
    watch: bool | None = None  # None: leave an existing source's setting alone


@dataclass(frozen=True)
class _Target:
    band_id: int
    band_slug: str
    source_id: int
    source_name: str
    root: str
    created: bool


def run(
    settings: Settings,
    request: ScanRequest,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Scan, drawing progress on ``err`` and the summary on ``out``; the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    # The source service wants an absolute path; a relative one is from here.
    request = replace(request, path=str(Path(request.path).expanduser().absolute()))
    try:
        return asyncio.run(_run(settings, request, out=out, err=err))
    except Refused as refusal:
        print(f"backline scan: {refusal}", file=err)
        return EXIT_REFUSED
    except KeyboardInterrupt:  # before the scan was asked for: nothing to cancel
        print("Interrupted.", file=err)
        return EXIT_INTERRUPTED


async def _run(settings: Settings, request: ScanRequest, *, out: TextIO, err: TextIO) -> int:
    import backend.models  # noqa: F401  (every table: a Job's flush needs `users` known)

    _check_database_exists(settings)
    engine = create_engine(settings.resolved_database_url)
    try:
        await _check_migrated(engine, settings)
        session_factory = create_session_factory(engine)
        target = await _prepare(session_factory, settings, request)
        how = "a new source" if target.created else "its source"
        where = "`backline worker` processes (Redis)" if settings.redis_url else "this process"
        print(
            f"Scanning {target.root} for band '{target.band_slug}' ({how} "
            f"'{target.source_name}'), jobs run in {where}. Ctrl-C stops; what is indexed stays.",
            file=err,
            flush=True,
        )
        return await _scan(settings, session_factory, target, out=out, err=err)
    finally:
        await engine.dispose()


def _check_database_exists(settings: Settings) -> None:
    """The default SQLite file must be there: opening it would create an empty one."""
    if settings.database_url:
        return
    path = settings.data_dir / "backline.db"
    if not path.exists():
        raise Refused(
            f"There is no database at {path.resolve()}. Run `backline migrate` first "
            "(or set BACKLINE_DATA_DIR / BACKLINE_DATABASE_URL to the server's)."
        )


async def _check_migrated(engine: AsyncEngine, settings: Settings) -> None:
    try:
        current, head = await pending_migrations(engine)
    except (OSError, SQLAlchemyError) as error:
        raise Refused(
            f"The database ({_describe(settings.resolved_database_url)}) cannot be reached: "
            f"{type(error).__name__}: {error}"
        ) from error
    if current != head:
        raise Refused(
            f"The database is at migration {current or '(none)'} but this code needs {head}. "
            "Run `backline migrate` first."
        )


async def _prepare(
    session_factory: async_sessionmaker[AsyncSession], settings: Settings, request: ScanRequest
) -> _Target:
    async with session_factory() as db_session:
        band = await _find_band(db_session, request.band)
        if band is None:
            slugs = await bands_service.list_slugs(db_session=db_session)
            raise Refused(f"There is no band '{request.band}'. {_list_bands(slugs)}")
        root = request.path
        try:
            source, created = await sources.find_or_add_local(
                db_session=db_session,
                settings=settings,
                band_id=band.id,
                root=root,
                name=request.name,
                watch=request.watch,
            )
        except BadUserInput as error:
            raise Refused(f"{error.message} ({root})") from error
        target = _Target(
            band_id=band.id,
            band_slug=band.slug,
            source_id=source.id,
            source_name=source.name,
            root=source.root,
            created=created,
        )
        await db_session.commit()
    return target


async def _find_band(db_session: AsyncSession, ref: str) -> Band | None:
    band = await bands_service.get_by_slug(db_session=db_session, slug=ref)
    if band is None and ref.strip().isdigit() and len(ref.strip()) < 19:
        band = await db_session.get(Band, int(ref))
    return band


def _list_bands(slugs: list[str]) -> str:
    if not slugs:
        return "There are no bands yet: create one through the API (createBand)."
    shown = ", ".join(slugs[:BANDS_SHOWN])
    more = f" and {len(slugs) - BANDS_SHOWN} more" if len(slugs) > BANDS_SHOWN else ""
    return f"Bands: {shown}{more}."


async def _scan(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    target: _Target,
    *,
    out: TextIO,
    err: TextIO,
) -> int:
    from workers import embedded as embedded_workers
    from workers.broker import create_broker

    bus = create_event_bus(settings)
    await bus.start()
    embedded = None
    broker: dramatiq.Broker | None = None
    try:
        if settings.redis_url:
            broker = create_broker(settings)
        else:
            threads = max(settings.worker_threads, 1)
            # The takes' media work outlives this command: the server's workers do it.
            embedded = embedded_workers.start(
                settings.model_copy(update={"worker_threads": threads}),
                bus.publish,
                send_media_jobs=False,
            )
            broker = embedded.broker
        async with AsyncExitStack() as stack:
            queue = _SubscribingQueue(broker, bus=bus, stack=stack)
            with _catch_interrupts() as interrupts:
                try:
                    job = await request_scan(
                        session_factory=session_factory,
                        queue=queue,
                        band_id=target.band_id,
                        source_id=target.source_id,
                    )
                except ServiceUnavailable as error:
                    raise Refused(error.message) from error
                messages = queue.subscriptions.get(job.id)
                ours = messages is not None
                if messages is None:
                    # A scan of this source was already queued or running (asked through
                    # the API, or by the watcher): follow that one. Its state is read
                    # right after subscribing, so nothing is missed.
                    print(f"A scan of this folder is under way (job {job.id}).", file=err)
                    messages = await stack.enter_async_context(bus.subscribe(f"job:{job.id}"))
                return await _follow_to_the_end(
                    job.id, messages, ours, session_factory, target, interrupts, out=out, err=err
                )
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        elif broker is not None:
            broker.close()
        await bus.close()


async def _follow_to_the_end(
    job_id: int,
    messages: Subscription,
    ours: bool,
    session_factory: async_sessionmaker[AsyncSession],
    target: _Target,
    interrupts: _Interrupts,
    *,
    out: TextIO,
    err: TextIO,
) -> int:
    """Progress until the job ends (its summary, exit 0 or 1) or Ctrl-C (130): a scan this
    command asked for is then cancelled, and waited for a little while."""
    bar = ProgressBar(err, label=f"Scanning {target.source_name}")
    state = await _follow(job_id, messages, session_factory, bar, until=interrupts.first)
    bar.close()
    if state["finished"]:
        _print_summary(state, target, out=out)
        return EXIT_SUCCEEDED if state["status"] == "SUCCEEDED" else EXIT_FAILED
    if not ours:
        print(f"Stopped following job {job_id}; the scan goes on where it runs.", file=err)
        return EXIT_INTERRUPTED
    print("Cancelling the scan; what was indexed stays (Ctrl-C again: stop waiting).", file=err)
    async with session_factory() as db_session:
        await jobs_service.cancel_unattended(db_session=db_session, job_id=job_id)
        await db_session.commit()
    state = await _follow(
        job_id,
        messages,
        session_factory,
        bar,
        until=interrupts.second,
        give_up_after=CANCEL_WAIT_SECONDS,
    )
    bar.close()
    if state["finished"]:
        _print_summary(state, target, out=out)
    else:
        print(f"The scan (job {job_id}) is still stopping; what it indexed stays.", file=out)
    return EXIT_INTERRUPTED


async def _follow(
    job_id: int,
    messages: Subscription,
    session_factory: async_sessionmaker[AsyncSession],
    bar: ProgressBar,
    *,
    until: asyncio.Event,
    give_up_after: float | None = None,
) -> dict[str, Any]:
    """Draw the job's snapshots until it ends, ``until`` is set or ``give_up_after``
    seconds pass; the newest snapshot. Events drive it; the row is read at the start and
    whenever no event came for a while (a scan run elsewhere, a lost event)."""
    loop = asyncio.get_running_loop()
    deadline = None if give_up_after is None else loop.time() + give_up_after
    state = await _read_job(session_factory, job_id)
    bar.update(state)
    incoming = asyncio.ensure_future(_next(messages))
    stop = asyncio.ensure_future(until.wait())
    try:
        while not state["finished"] and not until.is_set():
            wait = POLL_SECONDS
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    break
            done, _ = await asyncio.wait(
                {incoming, stop}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
            if stop in done:
                break
            message = incoming.result() if incoming in done else None
            if message is None:
                state = await _read_job(session_factory, job_id)
                if incoming.done():  # the subscription ended (the bus closed): poll
                    incoming = asyncio.ensure_future(asyncio.sleep(POLL_SECONDS))
            else:
                state = message
                incoming = asyncio.ensure_future(_next(messages))
            bar.update(state)
    finally:
        incoming.cancel()
        stop.cancel()
    return state


async def _next(messages: Subscription) -> dict[str, Any] | None:
    try:
        return await anext(messages)
    except StopAsyncIteration:
        return None


async def _read_job(
    session_factory: async_sessionmaker[AsyncSession], job_id: int
) -> dict[str, Any]:
    async with session_factory() as db_session:
        job = await db_session.get(Job, job_id)
        if job is None:
            raise RuntimeError(f"Job {job_id} disappeared.")
        return jobs_service.snapshot(job)


def _print_summary(state: dict[str, Any], target: _Target, *, out: TextIO) -> None:
    status = state["status"].lower()
    message = state.get("message") or ""
    print(f"Scan of {target.root} for band '{target.band_slug}' {status}: {message}", file=out)
    errors = state.get("errors") or []
    count = max(len(errors), state.get("failed") or 0)
    if count:
        print(f"{count} error{'s' if count != 1 else ''}:", file=out)
        for error in errors[:ERRORS_SHOWN]:
            print(f"  {error.get('path') or '(the folder)'}: {error['message']}", file=out)
        rest = count - min(len(errors), ERRORS_SHOWN)
        if rest:
            print(f"  ... and {rest} more.", file=out)
    out.flush()


class _SubscribingQueue(JobQueue):
    """Subscribes to each job's channel before its message is sent: no event of a job this
    command starts can be missed, however fast a worker picks it up."""

    def __init__(self, broker: dramatiq.Broker, *, bus: EventBus, stack: AsyncExitStack) -> None:
        super().__init__(broker)
        self.subscriptions: dict[int, Subscription] = {}
        self._bus = bus
        self._stack = stack

    async def send_committed(
        self, jobs: Sequence[JobRef], *, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        for job in jobs:
            if job.id not in self.subscriptions:
                self.subscriptions[job.id] = await self._stack.enter_async_context(
                    self._bus.subscribe(f"job:{job.id}")
                )
        await super().send_committed(jobs, session_factory=session_factory)


@dataclass
class _Interrupts:
    first: asyncio.Event = field(default_factory=asyncio.Event)
    second: asyncio.Event = field(default_factory=asyncio.Event)

    def count(self) -> None:
        (self.second if self.first.is_set() else self.first).set()


@contextmanager
def _catch_interrupts() -> Iterator[_Interrupts]:
    """Ctrl-C sets ``first``, then ``second``, instead of raising in the middle of the
    event loop: the command cancels the scan and waits for it to stop."""
    loop = asyncio.get_running_loop()
    interrupts = _Interrupts()

    def on_sigint(_signum: int, _frame: object) -> None:
        loop.call_soon_threadsafe(interrupts.count)

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: Ctrl-C is not ours to catch
        yield interrupts
        return
    try:
        yield interrupts
    finally:
        signal.signal(signal.SIGINT, previous)


def _describe(url: str) -> str:
    return url.split("@")[-1] if "@" in url else url
