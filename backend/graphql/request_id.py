"""Every request gets an id that its response carries (``X-Request-Id``) and its log lines
and masked errors quote, so a client's report finds the server's traceback.

An incoming ``X-Request-Id`` (a proxy's, or a client's own) is kept when it is a short
token of letters, digits and ``._:-``; anything else (long, odd characters that could
forge log lines) is replaced by a fresh id."""

from __future__ import annotations

import re
import uuid

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def sane(value: str | None) -> str | None:
    return value if value is not None and _SANE.fullmatch(value) else None


def request_id_of(connection: HTTPConnection) -> str:
    """The id RequestIdMiddleware gave this request (else a sane header, else a new one)."""
    state = connection.scope.get("state") or {}
    return (
        state.get("request_id") or sane(connection.headers.get("x-request-id")) or new_request_id()
    )


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == HEADER), b"")
        request_id = sane(incoming.decode("latin-1")) or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                headers.append((HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)
