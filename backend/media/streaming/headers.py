"""Response headers for media: content types, downloads, CORS and caching."""

from __future__ import annotations

import re
from urllib.parse import quote

from backend.media.signing import Grant

BY_SUFFIX = {
    ".m3u8": "application/vnd.apple.mpegurl",
    # Our renditions are audio only; players go by the playlist, not this type.
    ".m4s": "audio/mp4",
    ".mp4": "audio/mp4",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".mp3": "audio/mpeg",
    ".opus": "audio/ogg",
    ".ogg": "audio/ogg",
    ".flac": "audio/flac",
    ".wav": "audio/wav",
    ".aif": "audio/aiff",
    ".aiff": "audio/aiff",
    ".mka": "audio/x-matroska",
    ".webm": "audio/webm",
    ".ts": "video/mp2t",
    ".json": "application/json",
    ".png": "image/png",
}
OCTET_STREAM = "application/octet-stream"
# Types a browser only plays or shows. Anything else stated for an original (text/html,
# image/svg+xml, ...) could run script on the API's origin if served inline, so it goes
# out as octet-stream; the CSP below is the second fence.
_SAFE_PREFIXES = ("audio/", "video/")
_SAFE_TYPES = {
    OCTET_STREAM,
    "application/json",
    "application/ogg",
    "application/mp4",
    "application/vnd.apple.mpegurl",
    "application/x-mpegurl",
    "text/plain",
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/gif",
}
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")

# The signature is the credential, never a cookie, so any origin may read the bytes.
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Range, Accept-Ranges, Content-Length, ETag",
    "Cross-Origin-Resource-Policy": "cross-origin",
}
PREFLIGHT = {
    **CORS,
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Range, If-None-Match, If-Range",
    "Access-Control-Max-Age": "86400",
}
SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def content_type(grant: Grant) -> str:
    """The signed type if there is one (originals), else by the key's suffix (renditions),
    else by the signed file name's (an original of unknown type, e.g. a scanned file)."""
    stated = grant.content_type or _by_suffix(grant.key) or _by_suffix(grant.filename or "")
    if stated is None:
        return OCTET_STREAM
    if stated.startswith(_SAFE_PREFIXES) or stated in _SAFE_TYPES:
        return stated
    return OCTET_STREAM


def _by_suffix(name: str) -> str | None:
    last = name.rsplit("/", 1)[-1]
    dot = last.rfind(".")
    return BY_SUFFIX.get(last[dot:].lower()) if dot > 0 else None


def content_disposition(grant: Grant) -> str | None:
    """``inline; filename="take 2.wav"; filename*=UTF-8''…`` (RFC 6266), when named."""
    if grant.filename is None:
        return None
    fallback = "".join(
        char if char.isascii() and char.isprintable() and char not in '"\\' else "_"
        for char in grant.filename
    )
    encoded = quote(grant.filename, safe="")
    return f"{grant.disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def etag(key: str) -> str | None:
    """A content-addressed key names its bytes: its sha256 is a strong ETag. Rendition
    files are rewritten in place when a version is transcoded again, so they get none."""
    name = key.rsplit("/", 1)[-1]
    if key.startswith("sha256/") and _HEX_SHA256.fullmatch(name):
        return f'"{name}"'
    return None


def none_match(header: str | None, tag: str | None) -> bool:
    """``If-None-Match`` lists ``tag`` (weak comparison, as RFC 9110 asks for it)."""
    if header is None or tag is None:
        return False
    listed = {item.strip().removeprefix("W/") for item in header.split(",")}
    return "*" in listed or tag in listed


def cache_control(grant: Grant, now: int) -> str:
    # Private: the URL is a credential; no longer than the link is valid.
    return f"private, max-age={max(0, grant.expires_at - now)}"
