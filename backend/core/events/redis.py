"""The scaled-out bus: Redis pub/sub, so any api replica serves any subscriber.

    publish ─► PUBLISH (pooled connection) ─► Redis ─► one pub/sub connection per process
                                                        ─► reader task ─► Fanout ─► queues

However many local subscribers there are, the process holds ONE pub/sub connection: a
channel is SUBSCRIBEd when its first local subscriber arrives and UNSUBSCRIBEd when its
last one leaves. When the connection drops, the reader reconnects with backoff and
subscribes again to every channel still wanted; messages published meanwhile are lost
(pub/sub keeps nothing), which suits "latest state wins" updates."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from backend.core.errors import ServiceUnavailable
from backend.core.events.base import EventBus, decode, encode
from backend.core.events.fanout import DEFAULT_QUEUE_SIZE, Subscription

logger = logging.getLogger(__name__)

FIRST_RETRY_DELAY = 0.1
MAX_RETRY_DELAY = 5.0
# Notice a silently dead peer (NAT, failover) in about a minute, not the OS's two hours.
KEEPALIVE = {
    option: value
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3))
    if (option := getattr(socket, name, None)) is not None
}


@dataclass(eq=False)
class _Channel:
    """A channel this process wants from Redis."""

    refs: int = 0
    # Set once Redis confirmed our SUBSCRIBE on the current connection.
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)


class RedisEventBus(EventBus):
    """Channels are ``{prefix}:events:{channel}`` on Redis, so deployments and test runs
    sharing a server never see each other's events. Start, subscribe and close on one
    event loop (the server's); ``publish`` works from any loop while that one runs.
    The pub/sub connection opens with the first subscription, not in ``start``."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        timeout: float = 2.0,
        subscribe_timeout: float = 5.0,
    ) -> None:
        super().__init__(queue_size=queue_size)
        self.url = url
        self.prefix = prefix
        self.namespace = f"{prefix}:events:"
        # Names in CLIENT LIST say whose connections these are.
        self.client_name = re.sub(r"\s", "_", f"{prefix}:events")
        self.reconnects = 0  # connection attempts after the first, for metrics
        self._timeout = timeout  # for connecting and publishing
        self._subscribe_timeout = subscribe_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._publisher: Redis | None = None
        self._listener: ConnectionPool | None = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: dict[str, _Channel] = {}
        # Commands for the live pub/sub connection; None while there is none.
        self._commands: asyncio.Queue[tuple[str, str]] | None = None
        # Per Redis channel, the _Channel each SUBSCRIBE sent was for, in order: replies
        # come back in that order, so a late one cannot mark a newer _Channel subscribed.
        self._sent: dict[str, deque[_Channel]] = {}

    async def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError("The event bus is already started.")
        self._loop = asyncio.get_running_loop()
        common: dict[str, Any] = {
            "socket_connect_timeout": self._timeout,
            # Timeouts are ours (asyncio.timeout): redis-py applies socket_timeout with
            # wait_for, which on Python 3.11 can swallow a cancellation.
            "socket_timeout": None,
            "socket_keepalive": True,
            "socket_keepalive_options": KEEPALIVE,
        }
        # One retry: a pooled connection may be stale after a Redis restart.
        self._publisher = Redis.from_url(
            self.url,
            client_name=f"{self.client_name}:publish",
            retry=Retry(NoBackoff(), 1),
            **common,
        )
        # Only a factory for the pub/sub connection: no hidden retries or reconnects,
        # the reader owns that. Reads never time out: it idles between messages.
        self._listener = ConnectionPool.from_url(
            self.url,
            client_name=f"{self.client_name}:listen",
            retry=Retry(NoBackoff(), 0),
            **common,
        )

    async def close(self) -> None:
        if self._closed:
            return
        if self._loop is not None:
            self._on_home_loop("close")
        self._closed = True
        self._fanout.end_all()
        for channel in self._channels.values():
            channel.subscribed.set()  # wake subscribers still joining; they see the bus closed
        self._channels.clear()
        if self._reader is not None:
            # Cancel until it ends: a library may swallow one cancellation (3.11 wait_for).
            while not self._reader.done():
                self._reader.cancel()
                await asyncio.wait([self._reader], timeout=1.0)
        if self._publisher is not None:
            await self._publisher.aclose()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        payload = encode(message)
        if self._closed:
            raise ServiceUnavailable("The event bus is closed.")
        loop = self._started()
        if asyncio.get_running_loop() is loop:
            await self._publish(channel, payload)
            return
        # Another thread's loop: the connections belong to the bus's loop, so hand over.
        if not loop.is_running():
            raise RuntimeError("The event bus's event loop is not running.")
        future = asyncio.run_coroutine_threadsafe(self._publish(channel, payload), loop)
        await asyncio.wrap_future(future)

    async def _publish(self, channel: str, payload: str) -> None:
        assert self._publisher is not None
        try:
            async with asyncio.timeout(self._timeout):
                await self._publisher.publish(self.namespace + channel, payload)
        except (RedisError, OSError, TimeoutError) as error:
            raise ServiceUnavailable(
                f"Redis is unreachable; the event on {channel!r} was not published "
                f"({type(error).__name__}: {error})."
            ) from error

    # Subscribing: reference-counted per channel, on the bus's loop.

    async def _attach(self, subscription: Subscription) -> None:
        self._on_home_loop("subscribe")
        await super()._attach(subscription)
        try:
            await self._join(subscription.channel)
        except BaseException:
            self._fanout.remove(subscription)
            raise

    def _detach(self, subscription: Subscription) -> None:
        super()._detach(subscription)
        self._leave(subscription.channel)

    async def _join(self, name: str) -> None:
        if self._reader is None:
            # Started by the first subscriber: a publish-only process (a worker) never
            # holds a pub/sub connection.
            self._reader = asyncio.create_task(self._listen_forever(), name="event-bus-reader")
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel()
            self._send("SUBSCRIBE", name)
        channel.refs += 1
        try:
            # Wait for Redis to confirm: anything published afterwards reaches us.
            async with asyncio.timeout(self._subscribe_timeout):
                await channel.subscribed.wait()
        except TimeoutError:
            self._leave(name)
            raise ServiceUnavailable(
                f"Redis did not confirm the subscription to {name!r}; is it reachable?"
            ) from None
        except BaseException:
            self._leave(name)
            raise
        if self._closed:
            raise ServiceUnavailable("The event bus is closed.")

    def _leave(self, name: str) -> None:
        channel = self._channels.get(name)
        if channel is None:  # the bus was closed meanwhile
            return
        channel.refs -= 1
        if channel.refs == 0:
            del self._channels[name]
            self._send("UNSUBSCRIBE", name)

    def _send(self, command: str, name: str) -> None:
        """Queue a command for the pub/sub connection. Without one there is nothing to
        do: the next connection subscribes to every wanted channel anyway."""
        if self._commands is None:
            return
        key = self.namespace + name
        if command == "SUBSCRIBE":
            self._sent.setdefault(key, deque()).append(self._channels[name])
        self._commands.put_nowait((command, key))

    # The reader: one pub/sub connection, kept alive until close().

    async def _listen_forever(self) -> None:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        delay = FIRST_RETRY_DELAY
        while True:
            began = loop.time()
            connection = self._listener.make_connection()
            try:
                async with asyncio.timeout(self._timeout):
                    await connection.connect()
                await self._serve(connection)
            except (RedisError, OSError, TimeoutError) as error:
                logger.warning("Event bus lost its Redis pub/sub connection: %s", error)
            except Exception:
                logger.exception("Event bus reader failed; reconnecting.")
            finally:
                self._disconnected()
                await connection.disconnect(nowait=True)
            # Back off, unless the connection had been healthy for a while.
            delay = FIRST_RETRY_DELAY if loop.time() - began > MAX_RETRY_DELAY else delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)
            self.reconnects += 1

    async def _serve(self, connection: AbstractConnection) -> None:
        """Subscribe to what is wanted, then read and write until the connection fails."""
        self._commands = asyncio.Queue()
        for name in self._channels:
            self._send("SUBSCRIBE", name)
        tasks = {
            asyncio.create_task(self._write(connection, self._commands)),
            asyncio.create_task(self._read(connection)),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # both run until they fail: raise why
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _write(
        self, connection: AbstractConnection, commands: asyncio.Queue[tuple[str, str]]
    ) -> None:
        # One writer keeps SUBSCRIBE/UNSUBSCRIBE of a channel in the order they were asked.
        while True:
            command, key = await commands.get()
            await connection.send_command(command, key)

    async def _read(self, connection: AbstractConnection) -> None:
        while True:
            reply = await connection.read_response(push_request=True)
            if not isinstance(reply, list) or len(reply) < 3:
                continue
            kind, key = _text(reply[0]), _text(reply[1])
            name = key.removeprefix(self.namespace)
            if kind == "message":
                self._deliver(name, reply[2])
            elif kind == "subscribe":
                self._confirmed(key, name)

    def _confirmed(self, key: str, name: str) -> None:
        sent = self._sent.get(key)
        if not sent:
            return
        channel = sent.popleft()
        if not sent:
            del self._sent[key]
        if self._channels.get(name) is channel:
            channel.subscribed.set()

    def _deliver(self, name: str, payload: bytes) -> None:
        try:
            message = decode(payload)
        except ValueError:
            logger.warning("Ignored an event on %r that is not a JSON object.", name)
            return
        self._fanout.deliver(name, message)

    def _disconnected(self) -> None:
        self._commands = None
        self._sent.clear()
        for channel in self._channels.values():
            channel.subscribed.clear()

    def _started(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("Start the event bus first.")
        return self._loop

    def _on_home_loop(self, action: str) -> None:
        if asyncio.get_running_loop() is not self._started():
            raise RuntimeError(f"{action.capitalize()} on the event loop that started the bus.")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
