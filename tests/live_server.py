"""A real uvicorn serving an app on a free loopback port, and a small websocket client for
both GraphQL subscription protocols: graphql-transport-ws (connection_init, subscribe,
next, complete) and the legacy graphql-ws (connection_init, start, data, stop, complete)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
import websockets
from fastapi import FastAPI

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
PROTOCOL = TRANSPORT_WS
WAIT = 10.0  # every wait on the server is bounded by this many seconds


def free_port() -> int:
    """A loopback port nothing listens on (free when asked)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def eventually(check: Callable[[], Awaitable[bool] | bool], wait: float = WAIT) -> None:
    """Poll ``check`` until it is true; fail after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {wait} s: {check}")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve an app whose start-up already ran (its lifespan is the caller's): host:port."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started or task.done())
        if task.done():
            task.result()  # it failed to start: say why
            raise AssertionError("uvicorn stopped before it started")
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT)


async def open_socket(url: str, protocol: str = TRANSPORT_WS):
    socket_ = await websockets.connect(f"ws://{url}/graphql", subprotocols=[protocol])
    assert socket_.subprotocol == protocol
    return socket_


async def send_init(socket_, token: str | None) -> None:
    payload = {"authorization": f"Bearer {token}"} if token else {}
    await socket_.send(json.dumps({"type": "connection_init", "payload": payload}))


async def connect(url: str, token: str | None, protocol: str = TRANSPORT_WS):
    """A socket that has sent connection_init with the token (the ack is not awaited)."""
    socket_ = await open_socket(url, protocol)
    await send_init(socket_, token)
    return socket_


async def subscribe(socket_, op_id: str, query: str, variables: dict) -> None:
    """graphql-transport-ws: start an operation."""
    await socket_.send(
        json.dumps(
            {"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )
    )


async def start(socket_, op_id: str, query: str, variables: dict) -> None:
    """Legacy graphql-ws: start an operation."""
    await socket_.send(
        json.dumps(
            {"id": op_id, "type": "start", "payload": {"query": query, "variables": variables}}
        )
    )


async def stop(socket_, op_id: str) -> None:
    """Legacy graphql-ws: stop an operation."""
    await socket_.send(json.dumps({"id": op_id, "type": "stop"}))


async def receive(socket_, wait: float = WAIT) -> dict[str, Any]:
    """The next message, whatever it is."""
    return json.loads(await asyncio.wait_for(socket_.recv(), wait))


async def next_message(socket_, wait: float = WAIT) -> dict[str, Any]:
    """The next message that is not a ping, pong, keep-alive or acknowledgement."""
    while True:
        message = await receive(socket_, wait)
        if message["type"] not in {"ping", "pong", "ka", "connection_ack"}:
            return message


async def close_code(socket_, wait: float = WAIT) -> int:
    """Wait for the server to close the socket, skipping what it sends before; its code."""
    try:
        async with asyncio.timeout(wait):
            while True:
                await socket_.recv()
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None, "the socket closed without a close frame"
        return closed.rcvd.code
