"""Automatic persisted queries on Redis, when the deployment has one: every replica sees
a registration at once, and the database is spared the writes.

    {prefix}:persisted:doc:<sha256>  the document, expiring ttl seconds after its last use
    {prefix}:persisted:lru           sorted set sha256 -> last use (unix seconds)

Both are bounded: a put drops what went unused for longer than the ttl and then pops the
least recently used past max_entries (ZPOPMIN is atomic, so two replicas trimming at once
never drop more than the surplus)."""

from __future__ import annotations

import time

from redis.asyncio import Redis


class RedisStore:
    def __init__(self, redis: Redis, *, prefix: str, max_entries: int, ttl_seconds: int) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:persisted"
        self.lru_key = f"{self.prefix}:lru"
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds

    def doc_key(self, sha256: str) -> str:
        return f"{self.prefix}:doc:{sha256}"

    async def get(self, sha256: str) -> str | None:
        # Reached only when this process's LRU misses, so marking it used here is cheap.
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.getex(self.doc_key(sha256), ex=self.ttl_seconds)
            pipe.zadd(self.lru_key, {sha256: time.time()}, xx=True)
            document, _ = await pipe.execute()
        if document is None:
            return None
        return document.decode() if isinstance(document, bytes) else str(document)

    async def put(self, sha256: str, document: str) -> None:
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.doc_key(sha256), document, ex=self.ttl_seconds)
            pipe.zadd(self.lru_key, {sha256: now})
            pipe.zremrangebyscore(self.lru_key, "-inf", now - self.ttl_seconds)
            pipe.zcard(self.lru_key)
            *_, size = await pipe.execute()
        if size > self.max_entries:
            evicted = await self.redis.zpopmin(self.lru_key, size - self.max_entries)
            if evicted:
                await self.redis.delete(*(self.doc_key(_text(member)) for member, _ in evicted))

    async def touch(self, sha256: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.expire(self.doc_key(sha256), self.ttl_seconds)
            pipe.zadd(self.lru_key, {sha256: time.time()}, xx=True)
            await pipe.execute()

    async def aclose(self) -> None:
        await self.redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
