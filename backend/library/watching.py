"""Watching the sources set to `watch`, so new takes appear without anyone pressing scan.

A local folder is watched through filesystem events (watchfiles): changes are debounced,
and a scan is asked for once the changed files have stopped growing (a file still being
copied is taken when it is complete). A WebDAV share is polled (`webdav_poll_seconds`,
30 by default) with a walk that opens nothing and skips folders whose etag is unchanged;
only a difference asks for a scan. The scan itself is the same job as `scanSource`.

One watcher runs per deployment: in embedded mode the api process; scaled out, whichever
api process holds a lease in Redis (the others stand by; one takes over about a minute
after the holder stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from watchfiles import Change, awatch

from backend.core.errors import ServiceUnavailable
from backend.core.events import EventBus
from backend.core.settings import Settings
from backend.jobs.models import Job, JobStatus
from backend.jobs.queue import JobQueue
from backend.jobs.service import ENDED
from backend.library import paths
from backend.library.models import Source, SourceKind
from backend.library.scanner.changes import pending_changes
from backend.library.scanner.found import SourceUnreachable
from backend.library.scanner.requests import request_scan

logger = logging.getLogger("backline.watch")

# Source mutations publish here, so a newly watched source is watched at once.
SOURCES_CHANNEL = "sources"
REFRESH_SECONDS = 20.0
DEBOUNCE_MS = 1000  # the longest a burst of changes is gathered before it is yielded
STEP_MS = 200  # a burst ends after this long without a change
SETTLE_SECONDS = 0.5  # a changed file must keep its size this long to count as complete
RETRY_SECONDS = 15.0
LEASE_SECONDS = 60


async def sources_changed(bus: EventBus) -> None:
    """Tell the watcher to look at the watched sources again (best effort)."""
    try:
        await bus.publish(SOURCES_CHANNEL, {"type": "SourcesChanged"})
    except Exception:  # it also looks every REFRESH_SECONDS
        logger.warning("could not tell the watcher that sources changed")


@dataclass(frozen=True)
class _Watched:
    id: int
    band_id: int
    kind: SourceKind
    root: str
    # Credentials: a new password restarts the watch with it.
    username: str | None
    password_encrypted: str | None


class SourceWatcher:
    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        queue: JobQueue,
        bus: EventBus,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.queue = queue
        self.bus = bus
        self.lease = _Lease(settings)
        self._tasks: dict[_Watched, asyncio.Task[None]] = {}
        self._nudged = asyncio.Event()

    async def run(self) -> None:
        """Until cancelled."""
        listener = asyncio.create_task(self._listen())
        try:
            while True:
                try:
                    leading = await self.lease.hold()
                    wanted = await self._watched() if leading else set()
                except Exception:  # database or Redis restarting: keep what runs, look again
                    logger.exception("could not read the watched sources")
                    wanted = set(self._tasks)
                self._reconcile(wanted)
                self._nudged.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._nudged.wait(), REFRESH_SECONDS)
        finally:
            listener.cancel()
            self._reconcile(set())
            await self.lease.release()

    async def _listen(self) -> None:
        while True:
            try:
                async with self.bus.subscribe(SOURCES_CHANNEL) as messages:
                    async for _ in messages:
                        self._nudged.set()
            except Exception:  # the bus reconnects; until then the periodic look does
                logger.warning("watcher: source updates unavailable; retrying")
            await asyncio.sleep(RETRY_SECONDS)

    async def _watched(self) -> set[_Watched]:
        async with self.session_factory() as db_session:
            rows = await db_session.scalars(
                select(Source).where(Source.watch.is_(True), Source.removed_at.is_(None))
            )
            return {
                _Watched(s.id, s.band_id, s.kind, s.root, s.username, s.password_encrypted)
                for s in rows
            }

    def _reconcile(self, wanted: set[_Watched]) -> None:
        for source in set(self._tasks) - wanted:
            self._tasks.pop(source).cancel()
        for source in wanted - set(self._tasks):
            watch = self._watch_folder if source.kind == SourceKind.LOCAL_FOLDER else self._poll
            self._tasks[source] = asyncio.create_task(
                _forever(source, watch), name=f"watch-source-{source.id}"
            )

    async def _watch_folder(self, source: _Watched) -> None:
        root = Path(source.root)
        if not await asyncio.to_thread(root.is_dir):
            raise SourceUnreachable(f"The folder {root} is not there (any more).")
        # Catch up with what changed while nobody watched, then follow events.
        await self._scan_if_changed(source)
        visible = _visible_below(root)
        async for changes in awatch(root, watch_filter=visible, debounce=DEBOUNCE_MS, step=STEP_MS):
            grown = [path for change, path in changes if change != Change.deleted]
            await _settled(grown)
            await self._scan(source)

    async def _poll(self, source: _Watched) -> None:
        last_asked_for: set[tuple[str, str]] = set()
        while True:
            changes = await self._changes(source)
            # Files a scan has seen and skipped (not audio) show up every time: the same
            # changes as last time were dealt with, and don't need another scan.
            if changes and changes != last_asked_for:
                await self._scan(source)
                last_asked_for = changes
            await asyncio.sleep(self.settings.webdav_poll_seconds)

    async def _scan_if_changed(self, source: _Watched) -> None:
        if await self._changes(source):
            await self._scan(source)

    async def _changes(self, source: _Watched) -> set[tuple[str, str]]:
        async with self.session_factory() as db_session:
            row = await db_session.get(Source, source.id)
        if row is None:
            return set()
        return await pending_changes(
            session_factory=self.session_factory, settings=self.settings, source=row
        )

    async def _scan(self, source: _Watched) -> None:
        job = await self._request(source)
        if job.status == JobStatus.RUNNING:
            # That scan may have walked past the change already: once it ends, look again.
            await self._ended(job.id)
            if not await self._changes(source):
                return
            job = await self._request(source)
        logger.info("source %s changed: scan job %s", source.id, job.id)

    async def _request(self, source: _Watched) -> Job:
        return await request_scan(
            session_factory=self.session_factory,
            queue=self.queue,
            band_id=source.band_id,
            source_id=source.id,
        )

    async def _ended(self, job_id: int) -> None:
        while True:
            async with self.session_factory() as db_session:
                job = await db_session.get(Job, job_id)
            if job is None or job.status in ENDED:
                return
            await asyncio.sleep(1.0)


async def _forever(source: _Watched, watch: Callable[[_Watched], Awaitable[None]]) -> None:
    """Keep watching through trouble (share down, Redis down, folder gone): log, retry."""
    while True:
        try:
            await watch(source)
        except (SourceUnreachable, ServiceUnavailable) as error:
            logger.warning("watching source %s: %s", source.id, error)
        except Exception:
            logger.exception("watching source %s failed", source.id)
        await asyncio.sleep(RETRY_SECONDS)


def _visible_below(root: Path) -> Callable[[Change, str], bool]:
    def visible(change: Change, path: str) -> bool:
        return not paths.is_hidden(os.path.relpath(path, root))

    return visible


async def _settled(files: list[str]) -> None:
    """Return once none of the files has changed size or mtime for SETTLE_SECONDS."""

    def state() -> dict[str, tuple[int, int] | None]:
        result: dict[str, tuple[int, int] | None] = {}
        for path in files:
            try:
                stat = os.stat(path)
                result[path] = (stat.st_size, stat.st_mtime_ns)
            except OSError:
                result[path] = None
        return result

    before = await asyncio.to_thread(state)
    while True:
        await asyncio.sleep(SETTLE_SECONDS)
        now = await asyncio.to_thread(state)
        if now == before:
            return
        before = now


class _Lease:
    """Who watches: always this process in embedded mode; scaled out, the api process
    holding a Redis key that it renews and others take over when it lapses."""

    def __init__(self, settings: Settings) -> None:
        self.key = f"{settings.redis_prefix}:source-watcher"
        self.me = uuid.uuid4().hex
        self.redis = Redis.from_url(settings.redis_url) if settings.redis_url else None

    async def hold(self) -> bool:
        if self.redis is None:
            return True
        if await self.redis.set(self.key, self.me, nx=True, ex=LEASE_SECONDS):
            return True
        # Ours already? Renew it (compare-and-set, so a lapsed lease is never stolen back).
        renewed = await self.redis.eval(_RENEW, 1, self.key, self.me, LEASE_SECONDS)
        return bool(renewed)

    async def release(self) -> None:
        if self.redis is None:
            return
        with contextlib.suppress(Exception):
            await self.redis.eval(_RELEASE, 1, self.key, self.me)
        await self.redis.aclose()


_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('expire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
