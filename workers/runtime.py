"""What actors need to call services: settings, a database engine of their own (made on
the actors' event loop: connections belong to the loop that opened them), storage, the
broker to send follow-up jobs to, and a way to publish events. One runtime per worker
process; the embedded one shares the app's bus and broker."""

from __future__ import annotations

from dataclasses import dataclass, field

import dramatiq
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.core.database import create_engine, create_session_factory
from backend.core.settings import Settings
from backend.jobs.events import Publish
from backend.jobs.queue import JobQueue
from backend.library.scanner import ScanContext
from backend.media.storage import Storage, create_storage
from backend.media.work import MediaContext


@dataclass
class WorkerRuntime:
    settings: Settings
    publish: Publish
    broker: dramatiq.Broker
    # False: scans leave their media jobs unsent (see workers.embedded.start).
    send_media_jobs: bool = True
    _engine: AsyncEngine | None = field(default=None, init=False)
    _session_factory: async_sessionmaker[AsyncSession] | None = field(default=None, init=False)
    _storage: Storage | None = field(default=None, init=False)

    @property
    def session_factory(self) -> async_sessionmaker[AsyncSession]:
        if self._session_factory is None:
            self._engine = create_engine(self.settings.resolved_database_url)
            self._session_factory = create_session_factory(self._engine)
        return self._session_factory

    @property
    def storage(self) -> Storage:
        # Like the engine, made on the actors' event loop (the S3 client belongs to it).
        if self._storage is None:
            self._storage = create_storage(self.settings)
        return self._storage

    @property
    def queue(self) -> JobQueue:
        return JobQueue(self.broker)

    def scan_context(self) -> ScanContext:
        return ScanContext(
            session_factory=self.session_factory,
            settings=self.settings,
            publish=self.publish,
            queue=self.queue if self.send_media_jobs else None,
        )

    def media_context(self) -> MediaContext:
        return MediaContext(
            session_factory=self.session_factory,
            settings=self.settings,
            publish=self.publish,
            storage=self.storage,
            queue=self.queue,
        )

    async def close(self) -> None:
        if self._storage is not None:
            await self._storage.aclose()
            self._storage = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = self._session_factory = None


_current: WorkerRuntime | None = None


def configure(runtime: WorkerRuntime) -> None:
    global _current
    _current = runtime


def current() -> WorkerRuntime:
    if _current is None:
        raise RuntimeError("The worker runtime is not configured (see workers/__init__.py).")
    return _current
