"""Refuses an upload whose request says up front that it is too large, before a byte of
it is read: Starlette would otherwise spool the whole file to disk for the multipart
parser before uploadVersion could look at it. Requests that do not state their length
(chunked) are still held to the limit while the file is stored."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from backend.core.asgi import refuse
from backend.core.settings import Settings
from backend.media.storage.errors import TooLarge

# The operations and map parts around the file, and the multipart framing.
_ALLOWANCE = 1 << 20


class UploadSizeLimit:
    def __init__(self, app: ASGIApp, *, settings: Settings, path: str = "/graphql") -> None:
        self.app = app
        self.settings = settings
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.path:
            length = _content_length(scope)
            limit = self.settings.max_upload_bytes + _ALLOWANCE
            if length is not None and length > limit:
                await refuse(send, 413, TooLarge(max_bytes=self.settings.max_upload_bytes))
                return
        await self.app(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
