"""The event bus: live updates (job progress, new takes, comments) from whoever publishes
them to the GraphQL subscriptions that stream them::

    async with bus.subscribe(f"job:{job_id}") as messages:
        async for message in messages:
            ...
    await bus.publish(f"job:{job_id}", {"progress": 0.5})  # from any thread's event loop

In-process by default; Redis pub/sub between processes when ``BACKLINE_REDIS_URL`` is set.
``fanout`` holds the per-subscriber queues both implementations deliver into."""

from __future__ import annotations

from backend.core.events.base import EventBus
from backend.core.events.fanout import DEFAULT_QUEUE_SIZE, Message, Subscription
from backend.core.events.memory import InProcessEventBus
from backend.core.events.redis import RedisEventBus
from backend.core.settings import Settings

__all__ = [
    "DEFAULT_QUEUE_SIZE",
    "EventBus",
    "InProcessEventBus",
    "Message",
    "RedisEventBus",
    "Subscription",
    "create_event_bus",
]


def create_event_bus(settings: Settings, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> EventBus:
    """Redis pub/sub when the settings name a Redis, else the in-process bus."""
    if settings.redis_url:
        return RedisEventBus(
            settings.redis_url, prefix=settings.redis_prefix, queue_size=queue_size
        )
    return InProcessEventBus(queue_size=queue_size)
