"""The embedded default: publishers and subscribers share this process."""

from __future__ import annotations

from typing import Any

from backend.core.errors import ServiceUnavailable
from backend.core.events.base import EventBus, decode, encode


class InProcessEventBus(EventBus):
    """Delivers straight into the subscribers' queues, whichever thread publishes."""

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        self._closed = True
        self._fanout.end_all()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        if self._closed:
            raise ServiceUnavailable("The event bus is closed.")
        # A JSON round trip, as Redis would do: the same messages work on both buses and
        # a publisher mutating its dict afterwards cannot change what subscribers see.
        self._fanout.deliver(channel, decode(encode(message)))
