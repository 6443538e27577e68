"""The event bus: in-process (embedded) and Redis pub/sub (scaled out), as GraphQL
subscriptions use it. Redis tests use the real server, each with its own prefix."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from backend.core.errors import ServiceUnavailable
from backend.core.events import (
    InProcessEventBus,
    RedisEventBus,
    Subscription,
    create_event_bus,
)
from backend.core.settings import Settings
from tests import services

WAIT = 5.0  # every wait in these tests is bounded by this many seconds


async def receive(messages: Subscription, count: int) -> list[dict[str, Any]]:
    async def take() -> list[dict[str, Any]]:
        return [await anext(messages) for _ in range(count)]

    return await asyncio.wait_for(take(), WAIT)


async def eventually(check: Callable[[], Awaitable[bool] | bool]) -> None:
    async def poll() -> None:
        while True:
            result = check()
            if await result if isinstance(result, Awaitable) else result:
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT)


def in_thread_loop(coroutine_function: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
    """Run a coroutine on a new event loop in another thread, as embedded workers do."""
    return asyncio.wait_for(asyncio.to_thread(asyncio.run, coroutine_function()), WAIT)


@pytest.fixture
async def bus() -> AsyncIterator[InProcessEventBus]:
    async with InProcessEventBus() as bus:
        yield bus


# In-process bus


async def test_delivers_in_publish_order(bus: InProcessEventBus) -> None:
    async with bus.subscribe("job:1") as messages:
        snapshot = {"progress": 0}
        await bus.publish("job:1", snapshot)
        snapshot["progress"] = 99  # what was published is what arrives
        for n in range(1, 200):
            await bus.publish("job:1", {"progress": n})
        assert await receive(messages, 200) == [{"progress": n} for n in range(200)]


async def test_each_subscriber_gets_the_channels_it_asked_for(bus: InProcessEventBus) -> None:
    async with (
        bus.subscribe("take:a") as first,
        bus.subscribe("take:a") as second,
        bus.subscribe("take:b") as other,
    ):
        await bus.publish("take:a", {"n": 1})
        await bus.publish("take:b", {"n": 2})
        await bus.publish("take:a", {"n": 3})
        await bus.publish("nobody:listens", {"n": 4})
        assert await receive(first, 2) == [{"n": 1}, {"n": 3}]
        assert await receive(second, 2) == [{"n": 1}, {"n": 3}]
        await bus.publish("take:b", {"n": 5})
        assert await receive(other, 2) == [{"n": 2}, {"n": 5}]
        assert bus.subscriber_count("take:a") == 2
        assert bus.subscriber_count() == 3


async def test_publish_from_another_threads_event_loop(bus: InProcessEventBus) -> None:
    async with bus.subscribe("job:1") as messages:

        async def publish_all() -> None:
            for n in range(500):
                await bus.publish("job:1", {"n": n})

        publisher = asyncio.ensure_future(in_thread_loop(publish_all))
        assert await receive(messages, 500) == [{"n": n} for n in range(500)]
        await publisher


async def test_subscriber_on_another_threads_event_loop(bus: InProcessEventBus) -> None:
    subscribed = threading.Event()

    async def consume() -> list[dict[str, Any]]:
        async with bus.subscribe("job:1") as messages:
            subscribed.set()
            return await receive(messages, 100)

    consumer = asyncio.ensure_future(in_thread_loop(consume))
    assert await asyncio.to_thread(subscribed.wait, WAIT)
    for n in range(100):
        await bus.publish("job:1", {"n": n})
    assert await consumer == [{"n": n} for n in range(100)]
    assert bus.subscriber_count() == 0


async def test_concurrent_publishers_are_seen_in_one_order(bus: InProcessEventBus) -> None:
    async with bus.subscribe("job:1") as first, bus.subscribe("job:1") as second:

        def publisher(thread: int) -> Callable[[], Awaitable[None]]:
            async def publish_all() -> None:
                for n in range(250):
                    await bus.publish("job:1", {"thread": thread, "n": n})

            return publish_all

        await asyncio.gather(*(in_thread_loop(publisher(thread)) for thread in range(4)))
        seen = await receive(first, 1000)
        assert await receive(second, 1000) == seen
        for thread in range(4):
            assert [m["n"] for m in seen if m["thread"] == thread] == list(range(250))


async def test_a_slow_subscriber_loses_its_oldest_messages_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="backend.core.events")
    async with (
        InProcessEventBus(queue_size=3) as bus,
        bus.subscribe("job:1") as slow,
        bus.subscribe("job:1") as fast,
    ):
        for n in range(10):
            await bus.publish("job:1", {"n": n})
            assert await receive(fast, 1) == [{"n": n}]  # unaffected by the slow one
        assert await receive(slow, 3) == [{"n": 7}, {"n": 8}, {"n": 9}]
        assert (slow.dropped, fast.dropped) == (7, 0)

        # Nobody reading at all still never holds publishers up.
        await asyncio.wait_for(_publish_many(bus, "job:1", 10_000), WAIT)
        assert slow.dropped == 7 + 9_997
    warnings = [r for r in caplog.records if "too slow" in r.getMessage()]
    assert len(warnings) == 2  # one per subscriber that overflowed, not one per message


async def _publish_many(bus: InProcessEventBus, channel: str, count: int) -> None:
    for n in range(count):
        await bus.publish(channel, {"n": n})


async def test_unsubscribing_leaves_nothing_behind(bus: InProcessEventBus) -> None:
    for n in range(1000):
        async with bus.subscribe(f"job:{n % 10}"):
            pass
    with pytest.raises(LookupError):
        async with bus.subscribe("job:1"):
            raise LookupError

    subscribed = [asyncio.Event() for _ in range(300)]

    async def consume(channel: str, subscribed: asyncio.Event) -> None:
        async with bus.subscribe(channel) as messages:
            subscribed.set()
            async for _ in messages:
                pass

    consumers = [asyncio.create_task(consume(f"job:{n % 7}", e)) for n, e in enumerate(subscribed)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in subscribed)), WAIT)
    assert bus.subscriber_count() == 300
    for consumer in consumers:
        consumer.cancel()  # as when a websocket goes away
    await asyncio.wait_for(asyncio.gather(*consumers, return_exceptions=True), WAIT)

    assert bus.subscriber_count() == 0
    assert bus._fanout._channels == {}


async def test_close_ends_every_subscription() -> None:
    bus = InProcessEventBus()
    await bus.start()

    async def consume(channel: str) -> str:
        async with bus.subscribe(channel) as messages:
            async for _ in messages:
                pass
        return "ended"

    consumers = [asyncio.create_task(consume(c)) for c in ("job:1", "job:1", "take:1")]
    await eventually(lambda: bus.subscriber_count() == 3)
    await bus.close()
    assert await asyncio.wait_for(asyncio.gather(*consumers), WAIT) == ["ended"] * 3
    assert bus.subscriber_count() == 0

    with pytest.raises(ServiceUnavailable):
        await bus.publish("job:1", {"n": 1})
    with pytest.raises(ServiceUnavailable):
        async with bus.subscribe("job:1"):
            pass


async def test_only_json_objects_are_published(bus: InProcessEventBus) -> None:
    with pytest.raises(TypeError):
        await bus.publish("job:1", {"when": object()})
    with pytest.raises(TypeError):
        await bus.publish("job:1", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await bus.publish("job:1", {"loudness": float("nan")})


def test_settings_choose_the_bus() -> None:
    assert isinstance(create_event_bus(Settings(redis_url="")), InProcessEventBus)
    bus = create_event_bus(Settings(redis_url="redis://redis:6379/0", redis_prefix="band"))
    assert isinstance(bus, RedisEventBus)
    assert bus.namespace == "band:events:"


# Redis bus


@pytest.fixture
async def redis_url() -> str:
    try:
        await services.redis_available()
    except Exception as error:  # connection refused, timeout, ...
        services.missing("Redis on 127.0.0.1:6379", error)
    return services.REDIS_URL


@pytest.fixture
def prefix() -> str:
    return f"backline-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


MakeBus = Callable[..., Awaitable[RedisEventBus]]


@pytest.fixture
async def make_bus(redis_url: str) -> AsyncIterator[MakeBus]:
    """Started buses (one per simulated process), closed after the test."""
    buses: list[RedisEventBus] = []

    async def make(prefix: str, **options: Any) -> RedisEventBus:
        bus = RedisEventBus(redis_url, prefix=prefix, **options)
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()


async def subscribers_on_redis(admin: Redis, bus: RedisEventBus, channel: str) -> int:
    [(_, count)] = await admin.pubsub_numsub(bus.namespace + channel)
    return count


async def unsubscribed_on_redis(admin: Redis, bus: RedisEventBus, *channels: str) -> bool:
    return all([await subscribers_on_redis(admin, bus, channel) == 0 for channel in channels])


async def connections(admin: Redis, bus: RedisEventBus, kind: str = "listen") -> list[str]:
    """Ids of the bus's connections of a kind (listen, publish), from CLIENT LIST."""
    clients = await admin.client_list()
    return [c["id"] for c in clients if c["name"] == f"{bus.client_name}:{kind}"]


async def no_connections(admin: Redis, bus: RedisEventBus) -> bool:
    return not (await connections(admin, bus, "listen") or await connections(admin, bus, "publish"))


@pytest.mark.redis
async def test_events_cross_processes(make_bus: MakeBus, prefix: str) -> None:
    api, worker = await make_bus(prefix), await make_bus(prefix)
    async with api.subscribe("job:1") as on_api, worker.subscribe("job:1") as on_worker:
        for n in range(50):
            await worker.publish("job:1", {"n": n})
        expected = [{"n": n} for n in range(50)]
        assert await receive(on_api, 50) == expected
        assert await receive(on_worker, 50) == expected  # the publisher's process too


@pytest.mark.redis
async def test_a_publish_only_process_holds_no_pubsub_connection(
    make_bus: MakeBus, admin: Redis, prefix: str
) -> None:
    worker = await make_bus(prefix)
    await worker.publish("job:1", {"n": 1})
    assert await connections(admin, worker, "listen") == []
    assert len(await connections(admin, worker, "publish")) == 1


@pytest.mark.redis
async def test_prefixes_keep_deployments_apart(
    make_bus: MakeBus, admin: Redis, prefix: str
) -> None:
    ours, theirs = await make_bus(prefix), await make_bus(f"{prefix}-other")
    async with ours.subscribe("job:1") as on_ours, theirs.subscribe("job:1") as on_theirs:
        assert f"{prefix}:events:job:1" in await admin.pubsub_channels(f"{prefix}:*")
        await ours.publish("job:1", {"from": "ours"})
        await theirs.publish("job:1", {"from": "theirs"})
        # Each sees its own first: the other's message, published earlier, never came.
        assert await receive(on_ours, 1) == [{"from": "ours"}]
        assert await receive(on_theirs, 1) == [{"from": "theirs"}]


@pytest.mark.redis
async def test_many_subscribers_share_one_connection(
    make_bus: MakeBus, admin: Redis, prefix: str
) -> None:
    bus = await make_bus(prefix)
    async with contextlib.AsyncExitStack() as stack:
        subscriptions = [
            await stack.enter_async_context(bus.subscribe("job:1")) for _ in range(1000)
        ]
        assert len(await connections(admin, bus)) == 1
        assert await subscribers_on_redis(admin, bus, "job:1") == 1
        await bus.publish("job:1", {"progress": 1.0})
        received = await asyncio.wait_for(asyncio.gather(*(anext(s) for s in subscriptions)), WAIT)
        assert received == [{"progress": 1.0}] * 1000

    assert bus.subscriber_count() == 0
    assert bus._channels == {}
    await eventually(lambda: unsubscribed_on_redis(admin, bus, "job:1"))


@pytest.mark.redis
async def test_subscriptions_are_reference_counted(
    make_bus: MakeBus, admin: Redis, prefix: str
) -> None:
    bus = await make_bus(prefix)
    async with bus.subscribe("job:1") as staying:
        async with bus.subscribe("job:1"):
            pass
        assert await subscribers_on_redis(admin, bus, "job:1") == 1
        await bus.publish("job:1", {"n": 1})
        assert await receive(staying, 1) == [{"n": 1}]

        # Leaving and coming back quickly: UNSUBSCRIBE and SUBSCRIBE stay in order.
        for n in range(50):
            async with bus.subscribe("job:2") as messages:
                await bus.publish("job:2", {"n": n})
                assert await receive(messages, 1) == [{"n": n}]
    await eventually(lambda: unsubscribed_on_redis(admin, bus, "job:1", "job:2"))
    assert bus._channels == {}


@pytest.mark.redis
async def test_resubscribes_after_the_connection_is_killed(
    make_bus: MakeBus, admin: Redis, prefix: str
) -> None:
    bus = await make_bus(prefix)
    async with bus.subscribe("job:1") as messages:
        [killed] = await connections(admin, bus)
        await admin.client_kill_filter(_id=killed)

        async def resubscribed() -> bool:
            ids = await connections(admin, bus)
            if ids == [] or ids == [killed]:
                return False
            return await subscribers_on_redis(admin, bus, "job:1") == 1

        await eventually(resubscribed)
        await bus.publish("job:1", {"n": 1})
        assert await receive(messages, 1) == [{"n": 1}]
        assert bus.reconnects >= 1


@pytest.mark.redis
async def test_publish_from_another_threads_event_loop_over_redis(
    make_bus: MakeBus, prefix: str
) -> None:
    bus = await make_bus(prefix)
    async with bus.subscribe("job:1") as messages:

        async def publish_all() -> None:
            for n in range(20):
                await bus.publish("job:1", {"n": n})

        await in_thread_loop(publish_all)
        assert await receive(messages, 20) == [{"n": n} for n in range(20)]

        async def subscribe_there() -> None:
            async with bus.subscribe("job:1"):
                pass

        with pytest.raises(RuntimeError, match="event loop that started the bus"):
            await in_thread_loop(subscribe_there)


@pytest.mark.redis
async def test_garbage_on_the_channel_is_skipped(
    make_bus: MakeBus, admin: Redis, prefix: str
) -> None:
    bus = await make_bus(prefix)
    async with bus.subscribe("job:1") as messages:
        await admin.publish(bus.namespace + "job:1", "not json")
        await admin.publish(bus.namespace + "job:1", "[1]")
        await bus.publish("job:1", {"n": 1})
        assert await receive(messages, 1) == [{"n": 1}]


@pytest.mark.redis
async def test_close_ends_redis_subscriptions(redis_url: str, admin: Redis, prefix: str) -> None:
    bus = RedisEventBus(redis_url, prefix=prefix)
    await bus.start()
    subscribed = asyncio.Event()

    async def consume() -> str:
        async with bus.subscribe("job:1") as messages:
            subscribed.set()
            async for _ in messages:
                pass
        return "ended"

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(subscribed.wait(), WAIT)
    await bus.close()
    assert await asyncio.wait_for(consumer, WAIT) == "ended"
    await eventually(lambda: no_connections(admin, bus))
    with pytest.raises(ServiceUnavailable):
        await bus.publish("job:1", {"n": 1})


async def test_redis_down_is_service_unavailable(prefix: str) -> None:
    # Port 9 (discard) has no Redis: connection refused at once.
    bus = RedisEventBus("redis://127.0.0.1:9/0", prefix=prefix, timeout=0.5, subscribe_timeout=0.2)
    async with bus:
        with pytest.raises(ServiceUnavailable, match="not published"):
            await bus.publish("job:1", {"n": 1})
        with pytest.raises(ServiceUnavailable, match="did not confirm"):
            async with bus.subscribe("job:1"):
                pass
        assert bus.subscriber_count() == 0
        assert bus._channels == {}
