"""Serving stored media over HTTP behind signed links (``backend.media.signing``):
originals with byte ranges, MP3 renditions, and HLS playlists whose segment URIs are
signed as they are served. Wire it with ``app.include_router(create_media_router(settings))``
and a ``Storage`` in ``app.state.storage``."""

from __future__ import annotations

from backend.media.streaming.routes import create_media_router

__all__ = ["create_media_router"]
