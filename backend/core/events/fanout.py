"""Local fan-out shared by both buses: a bounded queue per subscriber, fed from any thread.

The in-process bus hands a published message to ``Fanout.deliver``; the Redis bus does
the same with each message its reader receives. Publishers may run on another thread's
event loop (embedded workers), so queues are guarded by a lock and a subscriber's
loop is woken with ``call_soon_threadsafe``; a publisher never waits for a consumer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Self

logger = logging.getLogger(__name__)

Message = dict[str, Any]
DEFAULT_QUEUE_SIZE = 1000


class Subscription:
    """One subscriber to one channel::

        async with bus.subscribe("job:42") as messages:
            async for message in messages:
                ...

    Leaving the block (or cancelling the task inside it) unsubscribes. When the queue is
    full the oldest message is dropped: events carry "latest state wins" snapshots, so a
    slow consumer should see the newest ones. Messages are shared between subscribers:
    treat them as read-only."""

    def __init__(
        self,
        channel: str,
        *,
        queue_size: int,
        attach: Callable[[Subscription], Awaitable[None]],
        detach: Callable[[Subscription], None],
    ) -> None:
        self.channel = channel
        self.queue_size = queue_size
        self.dropped = 0
        self._attach = attach
        self._detach = detach
        self._lock = threading.Lock()  # publishers on other threads append concurrently
        self._buffer: deque[Message] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._wakeup_scheduled = False  # one pending wake-up however many messages arrive
        self._ended = False
        self._warned = False

    async def __aenter__(self) -> Self:
        if self._loop is not None:
            raise RuntimeError("A subscription can be entered only once.")
        self._loop = asyncio.get_running_loop()
        await self._attach(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Synchronous on purpose: a cancelled consumer must not be able to skip it.
        self.end()
        self._detach(self)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        if self._loop is not asyncio.get_running_loop():
            raise RuntimeError("Iterate a subscription inside its `async with`, on its loop.")
        while True:
            with self._lock:
                if self._buffer:
                    return self._buffer.popleft()
                if self._ended:
                    raise StopAsyncIteration
                self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def put(self, message: Message) -> None:
        """Queue a message; callable from any thread, never blocks."""
        warn = False
        with self._lock:
            if self._ended:
                return
            if len(self._buffer) >= self.queue_size:
                self._buffer.popleft()
                self.dropped += 1
                warn, self._warned = not self._warned, True
            self._buffer.append(message)
            wake = not self._wakeup_scheduled
            self._wakeup_scheduled = True
        if warn:
            logger.warning(
                "Event subscriber on %r is too slow: its queue of %d is full, dropping the "
                "oldest messages (reported once per subscriber).",
                self.channel,
                self.queue_size,
            )
        if wake:
            self._wake_soon()

    def end(self) -> None:
        """End the iterator: pending messages are discarded, consumers see the end."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            self._buffer.clear()
            self._wakeup_scheduled = True
        self._wake_soon()

    def _wake_soon(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            same_loop = asyncio.get_running_loop() is loop
        except RuntimeError:  # called from a thread without a running loop
            same_loop = False
        if same_loop:
            self._wake()
            return
        # A closed loop means the subscriber is gone: nobody is left to read.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        # Runs on the subscriber's loop, so the waiter cannot change underneath.
        with self._lock:
            self._wakeup_scheduled = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Fanout:
    """Channel → its local subscriptions. Delivery holds the lock so that concurrent
    publishers are seen in the same order by every subscriber of a channel."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: dict[str, dict[Subscription, None]] = {}  # dict as an ordered set

    def add(self, subscription: Subscription) -> None:
        with self._lock:
            self._channels.setdefault(subscription.channel, {})[subscription] = None

    def remove(self, subscription: Subscription) -> None:
        with self._lock:
            subscribers = self._channels.get(subscription.channel)
            if subscribers is None:
                return
            subscribers.pop(subscription, None)
            if not subscribers:
                del self._channels[subscription.channel]

    def deliver(self, channel: str, message: Message) -> None:
        with self._lock:
            for subscription in self._channels.get(channel, ()):
                subscription.put(message)

    def end_all(self) -> None:
        with self._lock:
            subscriptions = [s for subscribers in self._channels.values() for s in subscribers]
            self._channels.clear()
        for subscription in subscriptions:
            subscription.end()

    def count(self, channel: str | None = None) -> int:
        with self._lock:
            if channel is not None:
                return len(self._channels.get(channel, ()))
            return sum(len(subscribers) for subscribers in self._channels.values())
