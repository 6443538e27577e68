"""The stores behind automatic persisted queries: the database table and Redis are
bounded (least recently used out first), the in-process LRU in front of them touches the
store at most once an interval, and a store that fails reads as a miss."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from backend.graphql.persisted.models import PersistedQuery
from backend.graphql.persisted.store import TOUCH_INTERVAL, CachedStore, DatabaseStore
from tests import services


def doc(index: int) -> tuple[str, str]:
    return f"{index:064x}", f"query Q{index} {{ __typename }}"


async def test_database_store_keeps_the_most_recently_used(session_factory):
    store = DatabaseStore(session_factory, max_entries=3)
    for index in range(3):
        await store.put(*doc(index))
    await store.touch(doc(0)[0])  # used again: now the newest
    await store.put(*doc(3))
    await store.put(*doc(4))
    await store.put(*doc(4))  # already kept: no change, no eviction

    async with session_factory() as session:
        kept = set(await session.scalars(select(PersistedQuery.sha256)))
    assert kept == {doc(0)[0], doc(3)[0], doc(4)[0]}
    assert await store.get(doc(1)[0]) is None
    assert await store.get(doc(4)[0]) == doc(4)[1]


async def test_database_store_marks_a_read_used_at_most_once_an_interval(session_factory):
    store = DatabaseStore(session_factory, max_entries=10)
    sha, text = doc(7)
    await store.put(sha, text)
    async with session_factory() as session:
        first = (await session.get(PersistedQuery, sha)).last_used_at
    assert await store.get(sha) == text
    async with session_factory() as session:
        assert (await session.get(PersistedQuery, sha)).last_used_at == first  # no write

    long_ago = first - TOUCH_INTERVAL - timedelta(seconds=1)
    async with session_factory() as session:
        await session.execute(
            update(PersistedQuery).where(PersistedQuery.sha256 == sha).values(last_used_at=long_ago)
        )
        await session.commit()
    assert await store.get(sha) == text
    async with session_factory() as session:
        assert (await session.get(PersistedQuery, sha)).last_used_at > first


class CountingStore:
    def __init__(self, *, fail: bool = False) -> None:
        self.documents: dict[str, str] = {}
        self.calls: list[str] = []
        self.fail = fail

    async def get(self, sha256: str) -> str | None:
        self.calls.append("get")
        if self.fail:
            raise ConnectionError("down")
        return self.documents.get(sha256)

    async def put(self, sha256: str, document: str) -> None:
        self.calls.append("put")
        if self.fail:
            raise ConnectionError("down")
        self.documents[sha256] = document

    async def touch(self, sha256: str) -> None:
        self.calls.append("touch")

    async def aclose(self) -> None:
        pass


async def test_the_lru_answers_repeats_and_touches_the_store_once_an_interval():
    inner = CountingStore()
    cached = CachedStore(inner, size=2, touch_interval=timedelta(hours=1))
    await cached.put(*doc(1))
    for _ in range(5):
        assert await cached.get(doc(1)[0]) == doc(1)[1]
    assert inner.calls == ["put"]  # five reads, no store traffic

    cached.touch_seconds = 0  # the interval has passed
    await cached.get(doc(1)[0])
    assert inner.calls == ["put", "touch"]

    # Bounded: a third document pushes out the least recently used.
    await cached.put(*doc(2))
    await cached.put(*doc(3))
    assert len(cached._entries) == 2 and doc(1)[0] not in cached._entries


async def test_the_lru_is_bounded_by_size_in_characters_too():
    cached = CachedStore(CountingStore(), size=100, characters=100)
    await cached.put("a" * 64, "x" * 60)
    await cached.put("b" * 64, "y" * 60)
    assert list(cached._entries) == ["b" * 64]


async def test_a_failing_store_reads_as_a_miss():
    cached = CachedStore(CountingStore(fail=True))
    assert await cached.get(doc(1)[0]) is None
    await cached.put(*doc(1))  # logged, not raised
    assert await cached.get(doc(1)[0]) == doc(1)[1]  # this process still remembers it


async def test_redis_store_is_bounded_and_expires(redis_prefix):
    from redis.asyncio import Redis

    from backend.graphql.persisted.redis_store import RedisStore

    store = RedisStore(
        Redis.from_url(services.REDIS_URL), prefix=redis_prefix, max_entries=3, ttl_seconds=300
    )
    try:
        for index in range(3):
            await store.put(*doc(index))
        await store.touch(doc(0)[0])
        await store.put(*doc(3))
        await store.put(*doc(4))

        assert await store.get(doc(1)[0]) is None
        assert await store.get(doc(2)[0]) is None
        for index in (0, 3, 4):
            assert await store.get(doc(index)[0]) == doc(index)[1]
        assert await store.redis.zcard(store.lru_key) == 3
        keys = [key async for key in store.redis.scan_iter(match=f"{redis_prefix}:*")]
        assert len(keys) == 4  # three documents and the sorted set
        ttl = await store.redis.ttl(store.doc_key(doc(0)[0]))
        assert 0 < ttl <= 300

        # Documents unused for longer than the ttl leave the sorted set at the next put.
        await store.redis.zadd(store.lru_key, {doc(0)[0]: 1.0})
        await store.put(*doc(5))
        members = {m.decode() for m in await store.redis.zrange(store.lru_key, 0, -1)}
        assert members == {doc(3)[0], doc(4)[0], doc(5)[0]}
    finally:
        await store.aclose()


async def test_the_app_keeps_registrations_on_redis_when_configured(
    redis_prefix, database_url, tmp_path, engine
):
    import httpx

    from backend.app import create_app
    from backend.core.settings import Settings
    from tests.graphql.test_persisted_queries import ANONYMOUS, NOT_FOUND, apq, sha256

    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        secret_key="test-secret-key-that-is-long-enough-for-hs256",
        redis_url=services.REDIS_URL,
        redis_prefix=redis_prefix,
        worker_threads=0,
        watch_sources=False,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            body = {"extensions": apq(ANONYMOUS)}
            assert (await client.post("/graphql", json=body)).json() == NOT_FOUND
            await client.post("/graphql", json={"query": ANONYMOUS, **body})
            app.state.persisted.store.clear()  # as another replica would: from Redis
            hit = await client.post("/graphql", json=body)
            assert hit.json()["data"] == {"__typename": "Query"}
        store = app.state.persisted.store.store
        assert await store.redis.get(store.doc_key(sha256(ANONYMOUS))) == ANONYMOUS.encode()
    async with engine.connect() as connection:  # nothing went to the database
        count = await connection.scalar(select(func.count()).select_from(PersistedQuery))
        assert count == 0
