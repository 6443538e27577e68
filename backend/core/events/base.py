"""What every event bus offers: publish JSON messages on a channel, subscribe to one."""

from __future__ import annotations

import abc
import json
from typing import Any, Self

from backend.core.errors import ServiceUnavailable
from backend.core.events.fanout import DEFAULT_QUEUE_SIZE, Fanout, Message, Subscription


class EventBus(abc.ABC):
    """Carries live updates from publishers to subscribers, per channel.

    Messages are JSON-serialisable dicts, delivered in publish order to each subscriber.
    ``publish`` may be awaited from any event loop in the process. Each subscriber has a
    bounded queue (``queue_size``); one that falls behind loses its oldest messages
    instead of slowing anyone else down."""

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1.")
        self.queue_size = queue_size
        self._fanout = Fanout()
        self._closed = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect and start whatever background work the bus needs."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop, release connections and end every open subscription."""

    @abc.abstractmethod
    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Send ``message`` to the channel's subscribers (raises ServiceUnavailable
        when it cannot be sent)."""

    def subscribe(self, channel: str) -> Subscription:
        """An async context manager; entering it subscribes, it yields the messages."""
        return Subscription(
            channel, queue_size=self.queue_size, attach=self._attach, detach=self._detach
        )

    def subscriber_count(self, channel: str | None = None) -> int:
        """Local subscribers of ``channel``, or of all channels."""
        return self._fanout.count(channel)

    async def _attach(self, subscription: Subscription) -> None:
        if self._closed:
            raise ServiceUnavailable("The event bus is closed.")
        self._fanout.add(subscription)

    def _detach(self, subscription: Subscription) -> None:
        self._fanout.remove(subscription)


def encode(message: dict[str, Any]) -> str:
    """The wire form of a message; fails early (TypeError) on what JSON cannot carry."""
    if not isinstance(message, dict):
        raise TypeError(f"An event message is a dict, not {type(message).__name__}.")
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def decode(payload: str | bytes) -> Message:
    message = json.loads(payload)
    if not isinstance(message, dict):
        raise ValueError("An event message is a JSON object.")
    return message
