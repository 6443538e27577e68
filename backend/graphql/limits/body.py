"""Refuses a GraphQL request body over ``max_request_bytes`` (413, a GraphQL-style JSON
error) before the app reads it: JSON is parsed whole, so a 100 MB document would be
held in memory and parsed before the token limit could refuse it.

Multipart requests (uploads) are left to backend/media/upload_limit.py and their own,
far larger limit; Starlette caps their non-file parts (``operations``, ``map``) at 1 MiB.
A body that does not state its length (chunked) is read here, up to the limit, and
handed on from memory."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.asgi import refuse
from backend.core.errors import RequestTooLarge
from backend.core.settings import Settings


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, settings: Settings, path: str = "/graphql") -> None:
        self.app = app
        self.limit = settings.max_request_bytes
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._applies(scope):
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                await _refuse(send, self.limit)
                return
            await self.app(scope, receive, send)  # the server holds the body to its length
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _refuse(send, self.limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _applies(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "POST":
            return False
        if scope["path"].rstrip("/") != self.path:
            return False
        content_type = (_header(scope, b"content-type") or "").lower()
        return not content_type.startswith("multipart/")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1").strip()
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # e.g. http.disconnect

    return replay


async def _refuse(send: Send, limit: int) -> None:
    error = RequestTooLarge(
        f"The request body is larger than the {limit} bytes a GraphQL request may be.",
        maxBytes=limit,
    )
    await refuse(send, 413, error)
