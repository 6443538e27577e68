"""Where automatic persisted queries are kept: the database table, or Redis when it is
configured (redis_store.py), always behind a small in-process LRU.

Each store is bounded (least recently used out first). Marking a document used is a
write, so it is throttled: at most once per TOUCH_INTERVAL per document and process,
whether the read came from the LRU or the store; "least recently used" is therefore
accurate to that interval, which is all eviction needs. A store that fails is logged and
read as a miss (the client then sends the full document, which still runs): automatic
persisted queries save bandwidth, they must not take the API down with them."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable
from datetime import timedelta
from typing import Protocol, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.database import utcnow
from backend.graphql.persisted.models import PersistedQuery

logger = logging.getLogger("backline.graphql.persisted")

T = TypeVar("T")

TOUCH_INTERVAL = timedelta(minutes=10)
LRU_SIZE = 1_000
LRU_CHARACTERS = 8_000_000  # documents may be long; the LRU stays a few MB whatever they are


class PersistedQueryStore(Protocol):
    async def get(self, sha256: str) -> str | None:
        """The document, marked used if it was not lately (the store knows when)."""

    async def put(self, sha256: str, document: str) -> None:
        """Keep it (a document already kept stays as it is), then evict beyond the bound."""

    async def touch(self, sha256: str) -> None:
        """Mark it used now."""

    async def aclose(self) -> None: ...


class DatabaseStore:
    """The ``persisted_queries`` table; each call is its own short transaction, apart
    from the request's unit of work (a registration stays even if the request fails)."""

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], *, max_entries: int
    ) -> None:
        self.session_factory = session_factory
        self.max_entries = max_entries

    async def get(self, sha256: str) -> str | None:
        async with self.session_factory() as session:
            row = (
                await session.execute(
                    select(PersistedQuery.document, PersistedQuery.last_used_at).where(
                        PersistedQuery.sha256 == sha256
                    )
                )
            ).first()
            if row is None:
                return None
            # Shared by every process: no replica writes it more than once an interval.
            if utcnow() - row.last_used_at >= TOUCH_INTERVAL:
                await self._touch(session, sha256)
            return row.document

    async def put(self, sha256: str, document: str) -> None:
        async with self.session_factory() as session:
            insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
            now = utcnow()
            inserted = await session.execute(
                insert(PersistedQuery)
                .values(sha256=sha256, document=document, created_at=now, last_used_at=now)
                .on_conflict_do_nothing(index_elements=[PersistedQuery.sha256])
            )
            if inserted.rowcount:  # type: ignore[attr-defined]
                # Everything past the newest max_entries, by the last_used_at index.
                surplus = (
                    select(PersistedQuery.sha256)
                    .order_by(PersistedQuery.last_used_at.desc(), PersistedQuery.sha256)
                    .offset(self.max_entries)
                    .scalar_subquery()
                )
                await session.execute(
                    delete(PersistedQuery).where(PersistedQuery.sha256.in_(surplus))
                )
            await session.commit()

    async def touch(self, sha256: str) -> None:
        async with self.session_factory() as session:
            await self._touch(session, sha256)

    @staticmethod
    async def _touch(session: AsyncSession, sha256: str) -> None:
        await session.execute(
            update(PersistedQuery)
            .where(PersistedQuery.sha256 == sha256)
            .values(last_used_at=utcnow())
        )
        await session.commit()

    async def aclose(self) -> None:
        pass


class CachedStore:
    """A store behind an in-process LRU, with throttled touches and failures read as
    misses."""

    def __init__(
        self,
        store: PersistedQueryStore,
        *,
        size: int = LRU_SIZE,
        characters: int = LRU_CHARACTERS,
        touch_interval: timedelta = TOUCH_INTERVAL,
    ) -> None:
        self.store = store
        self.size = size
        self.characters = characters
        self._characters = 0
        self.touch_seconds = touch_interval.total_seconds()
        # sha256 -> (document, when this process last marked it used: time.monotonic())
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()

    async def get(self, sha256: str) -> str | None:
        entry = self._entries.get(sha256)
        if entry is not None:
            self._entries.move_to_end(sha256)
            document, touched = entry
            if time.monotonic() - touched >= self.touch_seconds:
                self._entries[sha256] = (document, time.monotonic())
                await self._quietly("touch", self.store.touch(sha256))
            return document
        document = await self._quietly("read", self.store.get(sha256))
        if document is not None:
            self._remember(sha256, document)  # the store's get marked it used
        return document

    async def put(self, sha256: str, document: str) -> None:
        self._remember(sha256, document)
        await self._quietly("write", self.store.put(sha256, document))

    async def touch(self, sha256: str) -> None:
        await self._quietly("touch", self.store.touch(sha256))

    async def aclose(self) -> None:
        await self.store.aclose()

    def clear(self) -> None:
        """Forget what this process remembers (the store keeps it)."""
        self._entries.clear()
        self._characters = 0

    def _remember(self, sha256: str, document: str) -> None:
        previous = self._entries.pop(sha256, None)
        if previous is not None:
            self._characters -= len(previous[0])
        self._entries[sha256] = (document, time.monotonic())
        self._characters += len(document)
        while len(self._entries) > self.size or self._characters > self.characters:
            _, (evicted, _) = self._entries.popitem(last=False)
            self._characters -= len(evicted)

    @staticmethod
    async def _quietly(what: str, call: Awaitable[T]) -> T | None:
        try:
            return await call
        except Exception:  # the store is an optimisation; see the module docstring
            logger.warning("persisted query store: %s failed", what, exc_info=True)
            return None
