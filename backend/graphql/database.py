"""The database as one request sees it: one session, used by one coroutine at a time.

graphql-core resolves sibling fields concurrently, and an AsyncSession must not run two
statements at once; the lock serialises them (the DataLoaders keep their number small)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncSession


class RequestDatabase:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._lock = asyncio.Lock()

    async def all(self, statement: Executable) -> Sequence[Any]:
        async with self._lock:
            return (await self.session.execute(statement)).all()

    async def scalars(self, statement: Executable) -> Sequence[Any]:
        async with self._lock:
            return (await self.session.scalars(statement)).all()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A mutation's unit of work: commit at the end, roll back on any error."""
        async with self._lock:
            try:
                yield self.session
                await self.session.commit()
            except BaseException:
                await self.session.rollback()
                raise

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """The session, for a service call that only reads."""
        async with self._lock:
            yield self.session

    async def commit(self) -> None:
        async with self._lock:
            await self.session.commit()

    async def close(self) -> None:
        await self.session.close()
