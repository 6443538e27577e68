"""Membership reads for live subscriptions, cheap however many sockets ask at once.

A band's app opens its websockets together (a page load, a reconnect after a deploy):
5,000 subscriptions each taking a pooled connection to check membership queue for the
pool and time out. Here every check asked while one query runs waits for the next
query, which answers all of them: at most one pooled connection per process, and a few
statements for thousands of sockets."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.bands.models import BandMember

BATCH = 900  # user ids per statement: well under every database's parameter limit


class _Checks:
    """Pending (band, user) questions of one database, answered in batches."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory
        self._loop = asyncio.get_running_loop()
        self._pending: dict[tuple[int, int], asyncio.Future[bool]] = {}
        self._runner: asyncio.Task[None] | None = None

    async def is_member(self, band_id: int, user_id: int) -> bool:
        key = (band_id, user_id)
        future = self._pending.get(key)
        if future is None:
            future = self._pending[key] = self._loop.create_future()
            future.add_done_callback(_retrieve)
            if self._runner is None or self._runner.done():
                self._runner = self._loop.create_task(self._run())
        # Shielded: one socket leaving must not cancel the answer others wait for.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        # Questions asked while a query runs are answered by the next one.
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                found = await self._members(list(batch))
            except Exception as error:  # each asker reports it; nobody else is affected
                for future in batch.values():
                    if not future.done():
                        future.set_exception(error)
                continue
            for key, future in batch.items():
                if not future.done():
                    future.set_result(key in found)

    async def _members(self, keys: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
        users_by_band: dict[int, list[int]] = {}
        for band_id, user_id in keys:
            users_by_band.setdefault(band_id, []).append(user_id)
        found: set[tuple[int, int]] = set()
        async with self._session_factory() as session:
            for band_id, user_ids in users_by_band.items():
                for start in range(0, len(user_ids), BATCH):
                    rows = await session.execute(
                        select(BandMember.band_id, BandMember.user_id).where(
                            BandMember.band_id == band_id,
                            BandMember.user_id.in_(user_ids[start : start + BATCH]),
                        )
                    )
                    found.update((band, user) for band, user in rows)
        return found


def _retrieve(future: asyncio.Future[bool]) -> None:
    # Every asker may have left; the error is theirs to see, not the loop's to log.
    if not future.cancelled():
        future.exception()


_checks: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], _Checks] = (
    weakref.WeakKeyDictionary()
)


async def is_member(
    session_factory: async_sessionmaker[AsyncSession], *, band_id: int, user_id: int
) -> bool:
    """Whether the user is a member of the band now, batched with concurrent askers."""
    checks = _checks.get(session_factory)
    if checks is None or checks._loop is not asyncio.get_running_loop():
        checks = _checks[session_factory] = _Checks(session_factory)
    return await checks.is_member(band_id, user_id)


async def member_ids(
    session_factory: async_sessionmaker[AsyncSession], *, band_id: int
) -> frozenset[int]:
    """Everyone in the band now: one read per event serves all of its subscribers."""
    async with session_factory() as session:
        rows = await session.scalars(
            select(BandMember.user_id).where(BandMember.band_id == band_id)
        )
        return frozenset(rows)
