"""Entry point of a worker process (`backline worker` → ``dramatiq workers.main``):
the Redis broker, the actors, and a runtime publishing events to Redis."""

from __future__ import annotations

import asyncio
from typing import Any

# Every table on the metadata: the api has them all through its schema, a worker only
# what the actors import, and a flush of a Job (FK to users) needs the users table.
import backend.models  # noqa: F401
from backend.core.events import EventBus, create_event_bus
from backend.core.settings import get_settings
from workers import runtime
from workers.actors import register_actors
from workers.broker import install_broker

settings = get_settings()
broker = install_broker(settings)
register_actors(broker)
_bus: EventBus | None = None
_bus_lock = asyncio.Lock()


async def publish(channel: str, message: dict[str, Any]) -> None:
    # Started on first use, on the actors' event loop (a connection belongs to its loop);
    # the lock keeps two actors publishing first at once from starting two buses.
    global _bus
    async with _bus_lock:
        if _bus is None:
            bus = create_event_bus(settings)
            await bus.start()
            _bus = bus
    await _bus.publish(channel, message)


runtime.configure(runtime.WorkerRuntime(settings=settings, publish=publish, broker=broker))
