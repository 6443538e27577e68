"""Answers an ASGI middleware sends itself, before the app sees the request."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Send

from backend.core.errors import BacklineError


def error_entry(error: BacklineError) -> dict[str, Any]:
    """The error as an entry of a GraphQL response's ``errors``, for answers made before
    (or outside) the schema's execution."""
    return {"message": error.message, "extensions": error.extensions}


async def refuse(send: Send, status: int, error: BacklineError) -> None:
    """A GraphQL-shaped JSON error answer; the connection closes, since what the client
    still sends (a body too large, say) is not read."""
    body = json.dumps({"data": None, "errors": [error_entry(error)]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
