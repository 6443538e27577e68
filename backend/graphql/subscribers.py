"""One subscription's end of a multiplexed group: its frames, and writing them cheaply.

The group serialises an event's payload once; a subscriber only wraps it in its own
frame (the protocol's message type and the operation id are all that differ) and writes
it. Writing must cost neither a task per subscriber nor a stall for everyone behind a
slow client, so a write runs at once, in the caller, as far as it goes without waiting
(the usual case: the socket is writable and the frame leaves in one call). Only a write
that has to wait for the socket moves into a task of its own, and later frames queue
behind it, in order."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

logger = logging.getLogger("backline.graphql")

MAX_BACKLOG = 100  # frames a stalled socket may have waiting; then the oldest go


def next_frame_prefix(operation_id: str) -> str:
    """graphql-transport-ws: {"id": …, "type": "next", "payload": …}."""
    return '{"id":' + json.dumps(operation_id) + ',"type":"next","payload":'


def data_frame_prefix(operation_id: str) -> str:
    """The legacy graphql-ws: {"type": "data", "id": …, "payload": …}."""
    return '{"type":"data","id":' + json.dumps(operation_id) + ',"payload":'


class Subscriber:
    """A subscription served by a group. ``done`` resolves when the group ends it: with
    None when the stream is over (the bus closed), with the error it was sent otherwise."""

    __slots__ = ("_backlog", "_prefix", "_send", "_writer", "context", "done", "gone", "viewer_id")

    def __init__(
        self, *, context: Any, send_text: Callable[[str], Awaitable[None]], prefix: str
    ) -> None:
        self.context = context
        self.viewer_id: int | None = None
        self.done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.gone = False  # the socket failed a write: nothing more is sent
        self._send = send_text
        self._prefix = prefix
        self._backlog: deque[str] | None = None  # not None while a write waits
        self._writer: asyncio.Task[None] | None = None

    def deliver(self, payload: str) -> None:
        """Send one result, ``payload`` being its serialised {"data": …, "errors": …}."""
        self.write(self._prefix + payload + "}")

    def end(self, error: BaseException | None = None) -> None:
        if not self.done.done():
            self.done.set_result(error)

    def write(self, frame: str) -> None:
        if self.gone:
            return
        if self._backlog is not None:
            if len(self._backlog) >= MAX_BACKLOG:
                self._backlog.popleft()  # "latest state wins", as the bus's queues
            self._backlog.append(frame)
            return
        coroutine = self._send(frame)
        try:
            waiting_on = _step(coroutine)
        except StopIteration:
            return  # written
        except Exception:
            self._lost()
            return
        self._backlog = deque()
        self._writer = asyncio.get_running_loop().create_task(self._finish(coroutine, waiting_on))

    async def flush(self) -> None:
        """Wait until every frame written so far has left (or the socket failed)."""
        if self._writer is not None:
            await asyncio.wait([self._writer])

    def discard(self) -> None:
        """The operation is over: frames not yet written are dropped."""
        self.gone = True
        if self._writer is not None:
            self._writer.cancel()

    async def _finish(self, coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        try:
            await _resume(coroutine, waiting_on)
            while self._backlog:
                await self._send(self._backlog.popleft())
        except asyncio.CancelledError:
            raise
        except Exception:
            self._lost()
        finally:
            self._backlog = None
            self._writer = None

    def _lost(self) -> None:
        # The socket is closing; its handler notices and ends the operation.
        logger.debug("subscriber socket gone", exc_info=True)
        self.gone = True


def _step(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine up to its first wait; StopIteration when it finished."""
    return coroutine.send(None)


async def _resume(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
    """Finish a coroutine that ``_step`` started, inside the current task: what Python
    3.12's eager tasks do, which 3.11 lacks. It waited on ``waiting_on`` (a future, or
    None for a bare yield); wait for that, then let it go on, until it returns."""
    try:
        while True:
            if waiting_on is None:
                await asyncio.sleep(0)
            else:
                # The coroutine takes the result (or the error) from the future itself.
                await asyncio.wait([waiting_on])
            waiting_on = coroutine.send(None)
    except StopIteration:
        return
    except asyncio.CancelledError:
        coroutine.close()
        raise
