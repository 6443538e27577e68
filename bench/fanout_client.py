"""The load side of bench/fanout.py: one process holding many ``bandEvents`` subscribers.

Started by bench/fanout.py as ``python -m bench.fanout_client``; it takes one JSON command
a line on stdin and answers each with one JSON line on stdout:

- ``connect`` {url, band, tokens, concurrency, compression}: open one websocket per token
  (graphql-transport-ws: connection_init, wait for connection_ack, subscribe);
- ``arm`` {marker}: from now on, note when each subscriber first receives a message that
  contains ``marker`` (answered at once, before the event is triggered);
- ``collect`` {timeout}: wait until every live subscriber has it (or the timeout), then
  answer the receive times and what went wrong;
- ``close``: close every socket (and forget them); the process ends with its stdin.

Receive times are ``time.monotonic()``: on Linux one clock for every process of the
machine, so bench/fanout.py subtracts its own "just before the trigger" reading. The
receiving path only takes the time, stores the raw bytes and tests for the marker; the
event's JSON is checked after the round (only other, rare messages, such as errors and
ends, are parsed as they come), so the client's own work adds as little as it can."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

PROTOCOL = "graphql-transport-ws"
# What the README shows a band's app subscribing to (and tests/test_subscriptions.py).
BAND_EVENTS = """subscription($id: ID!) { bandEvents(bandId: $id) {
  __typename
  ... on VersionAdded { version { label track { title } } }
  ... on CommentAdded { comment { body author { handle } } }
  ... on JobUpdated { job { status } }
} }"""
# --viewer-field: the same, plus a field only the viewer may see (each subscriber's own
# result, so the api executes the selection once per subscriber, not once per event).
BAND_EVENTS_PER_VIEWER = BAND_EVENTS.replace("author { handle }", "author { handle email }")
ACK_TIMEOUT = 60  # seconds for connection_ack, however busy the server is
SAMPLES = 5  # error messages reported back, of each kind


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit: one descriptor per socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass(eq=False)
class Subscriber:
    socket: ClientConnection
    received_at: float | None = None  # when the armed marker arrived
    payload: bytes = b""  # the message that carried it
    others: list[bytes] = field(default_factory=list)  # anything else, since the last collect
    closed: str | None = None  # why the socket ended, if it did before we closed it
    # The api's message that ended the subscription (error, complete), the socket open.
    ended: str | None = None
    errored: bool = False  # this round: a result with errors instead of the event
    answered: bool = False  # this round: the event, errors, or the end came

    @property
    def listening(self) -> bool:
        return self.closed is None and self.ended is None


@dataclass
class Round:
    marker: bytes
    pending: int
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Load:
    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []
        self.readers: list[asyncio.Task[None]] = []
        self.round: Round | None = None
        self.past: list[bytes] = []  # markers of earlier rounds: their events come late
        self.closing = False

    # ----------------------------------------------------------------- connecting

    async def connect(self, command: dict[str, Any]) -> dict[str, Any]:
        semaphore = asyncio.Semaphore(command["concurrency"])
        durations: list[float] = []
        failures: list[str] = []

        async def one(token: str) -> None:
            async with semaphore:
                started = time.monotonic()
                try:
                    socket = await _open(command, token)
                except Exception as error:  # counted and reported: a figure, not a crash
                    failures.append(f"{type(error).__name__}: {error}"[:200])
                    return
                durations.append(time.monotonic() - started)
                subscriber = Subscriber(socket)
                self.subscribers.append(subscriber)
                self.readers.append(asyncio.create_task(self._read(subscriber)))

        started = time.monotonic()
        await asyncio.gather(*(one(token) for token in command["tokens"]))
        return {
            "connected": len(durations),
            "failed": len(failures),
            "failures": failures[:SAMPLES],
            "durations": durations,
            "seconds": time.monotonic() - started,
            "cpu": time.process_time(),
        }

    async def _read(self, subscriber: Subscriber) -> None:
        try:
            while True:
                raw = await subscriber.socket.recv(decode=False)
                now = time.monotonic()
                current = self.round
                if current is not None and subscriber.received_at is None and current.marker in raw:
                    subscriber.received_at, subscriber.payload = now, raw
                    self._answered(subscriber)
                    continue
                # Not the round's event: a rare message, parsing it costs nothing that counts.
                kind, errors = _kind(raw)
                if kind in {"error", "complete"}:  # the api ended the subscription
                    subscriber.ended = subscriber.ended or raw.decode(errors="replace")[:300]
                    self._answered(subscriber)
                    continue
                subscriber.others.append(raw)
                if errors and current is not None:  # errors instead of the event
                    subscriber.errored = True
                    self._answered(subscriber)
        except websockets.ConnectionClosed as closed:
            if not self.closing:
                code = closed.rcvd.code if closed.rcvd else "no close frame"
                reason = closed.rcvd.reason if closed.rcvd else str(closed)
                subscriber.closed = f"{code} {reason}".strip()
        if not self.closing:
            self._answered(subscriber)

    def _answered(self, subscriber: Subscriber) -> None:
        """The subscriber has its answer to the round: the event, errors, or its end."""
        current = self.round
        if current is not None and not subscriber.answered:
            subscriber.answered = True
            current.pending -= 1
            if current.pending == 0:
                current.done.set()

    # ----------------------------------------------------------------- one event

    def arm(self, command: dict[str, Any]) -> dict[str, Any]:
        live = [s for s in self.subscribers if s.listening]
        for subscriber in self.subscribers:
            # `others` is kept: what came between rounds (a subscribe error) counts too.
            subscriber.received_at, subscriber.payload = None, b""
            subscriber.errored, subscriber.answered = False, not subscriber.listening
        self.round = Round(marker=command["marker"].encode(), pending=len(live))
        if not live:
            self.round.done.set()
        return {"armed": len(live), "cpu": time.process_time()}

    async def collect(self, command: dict[str, Any]) -> dict[str, Any]:
        current = self.round
        assert current is not None, "arm before collect"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(command["timeout"]):
                await current.done.wait()
        cpu = time.process_time()  # before the checks below, which are not delivery work
        self.round = None
        self.past.append(current.marker)
        marker = current.marker.decode()
        times: list[float] = []
        invalid: list[str] = []
        unexpected: list[str] = []
        missing = late = 0
        for subscriber in self.subscribers:
            if subscriber.received_at is not None:
                problem = _check(subscriber.payload, marker)
                if problem is None:
                    times.append(subscriber.received_at)
                else:
                    invalid.append(problem)
            elif subscriber.listening and not subscriber.errored:
                missing += 1  # nothing at all (errors instead are counted below)
            # Anything else that came meanwhile: server pings are fine, errors are not.
            for raw in subscriber.others:
                if any(old in raw for old in self.past[:-1]):
                    late += 1  # an earlier round's event, after that round's timeout
                elif _type_of(raw) not in {"ping", "pong"}:
                    unexpected.append(raw.decode(errors="replace")[:300])
            subscriber.others = []
        dropped = [s.closed for s in self.subscribers if s.closed is not None]
        ended = [s.ended for s in self.subscribers if s.ended is not None]
        return {
            "times": times,
            "ended": len(ended),
            "ended_samples": ended[:SAMPLES],
            "missing": missing,
            "late": late,
            "invalid": len(invalid),
            "invalid_samples": invalid[:SAMPLES],
            "unexpected": len(unexpected),
            "unexpected_samples": unexpected[:SAMPLES],
            "dropped": len(dropped),
            "dropped_samples": dropped[:SAMPLES],
            "cpu": cpu,
        }

    # ----------------------------------------------------------------- the end

    async def close(self) -> dict[str, Any]:
        dropped = [s.closed for s in self.subscribers if s.closed is not None]
        self.closing = True
        semaphore = asyncio.Semaphore(200)

        async def one(subscriber: Subscriber) -> None:
            async with semaphore:
                with contextlib.suppress(Exception):
                    await subscriber.socket.close()

        await asyncio.gather(*(one(s) for s in self.subscribers))
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        self.subscribers, self.readers, self.closing = [], [], False
        return {"dropped": len(dropped), "dropped_samples": dropped[:SAMPLES]}


async def _open(command: dict[str, Any], token: str) -> ClientConnection:
    socket = await websockets.connect(
        command["url"],
        subprotocols=[websockets.Subprotocol(PROTOCOL)],
        # A browser offers permessage-deflate; the api takes it only with --compression.
        compression="deflate" if command["compression"] else None,
        ping_interval=None,  # browsers send no pings; the server's own keep them alive
        open_timeout=ACK_TIMEOUT,
        proxy=None,
        max_queue=None,
    )
    try:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        await socket.send(json.dumps(init))
        async with asyncio.timeout(ACK_TIMEOUT):
            while True:
                message = json.loads(await socket.recv())
                if message["type"] == "connection_ack":
                    break
                if message["type"] not in {"ping", "pong"}:
                    raise RuntimeError(f"expected connection_ack, got {message}")
        subscribe = {
            "id": "band",
            "type": "subscribe",
            "payload": {
                "query": BAND_EVENTS_PER_VIEWER if command.get("viewer_field") else BAND_EVENTS,
                "variables": {"id": command["band"]},
            },
        }
        await socket.send(json.dumps(subscribe))
    except BaseException:
        await socket.close()
        raise
    return socket


def _kind(raw: bytes) -> tuple[str, bool]:
    """A message's type, and whether it carries errors (a `next` with errors is an error
    in place of an event; `error` and `complete` end the subscription)."""
    try:
        message = json.loads(raw)
        payload = message.get("payload")
        errors = isinstance(payload, dict) and bool(payload.get("errors"))
        return str(message.get("type")), errors or message.get("type") == "error"
    except (ValueError, AttributeError):
        return "?", True


def _type_of(raw: bytes) -> str:
    return _kind(raw)[0]


def _check(raw: bytes, marker: str) -> str | None:
    """None when the message is the CommentAdded event we triggered, else what it is."""
    try:
        message = json.loads(raw)
        payload = message.get("payload") or {}
        if message.get("type") != "next" or payload.get("errors"):
            return raw.decode(errors="replace")[:300]
        event = payload["data"]["bandEvents"]
        if event["__typename"] != "CommentAdded" or event["comment"]["body"] != marker:
            return raw.decode(errors="replace")[:300]
    except (ValueError, KeyError, TypeError, AttributeError):
        return raw.decode(errors="replace")[:300]
    return None


async def main() -> None:
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    # Commands carry thousands of tokens: lines of a few MB.
    stdin = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    load = Load()
    while line := await stdin.readline():
        command = json.loads(line)
        name = command["cmd"]
        if name == "connect":
            answer = await load.connect(command)
        elif name == "arm":
            answer = load.arm(command)
        elif name == "collect":
            answer = await load.collect(command)
        elif name == "close":
            answer = await load.close()
        else:
            answer = {"error": f"unknown command {name!r}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    try:
        import uvloop  # the server's loop too; less client CPU per message
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
