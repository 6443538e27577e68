"""HLS playlists served with signed links: a player resolves each segment URI against
the playlist's URL and fetches it with no query string of its own, so every URI the
playlist names (segments, the ``EXT-X-MAP`` init segment, variant playlists) is rewritten
to carry a signature for its own key and the playlist's expiry.

The rewritten URIs stay relative (``seg_001.m4s?exp=…&sig=…``), so they resolve against
wherever the API is mounted. Only URIs naming a key in the playlist's own folder (or
below it) are signed; anything else (``../``, absolute paths, other hosts) is left as it
is, so a playlist can never hand out a link to a file outside its rendition.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from backend.media.storage.errors import InvalidKey
from backend.media.storage.keys import check_key

# Tags that name files carry them in a quoted URI attribute (EXT-X-MAP, EXT-X-MEDIA,
# EXT-X-I-FRAME-STREAM-INF, EXT-X-PART, EXT-X-PRELOAD-HINT, ...).
_URI_ATTRIBUTE = re.compile(r'(URI=")([^"]*)(")')


def rewrite(text: str, *, playlist_key: str, query_for: Callable[[str], str]) -> str:
    """``text`` (a playlist stored at ``playlist_key``) with each URI of a file in its
    folder followed by ``?`` and ``query_for(<that file's key>)``."""
    folder = playlist_key.rsplit("/", 1)[0] + "/" if "/" in playlist_key else ""

    def signed(uri: str) -> str:
        key = _key_in_folder(uri, folder)
        return uri if key is None else f"{uri}?{query_for(key)}"

    lines = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        stripped = body.strip()
        if stripped.startswith("#EXT"):
            body = _URI_ATTRIBUTE.sub(lambda m: m[1] + signed(m[2]) + m[3], body)
        elif stripped and not stripped.startswith("#"):
            body = signed(stripped)
        lines.append(body + ending)
    return "".join(lines)


def _key_in_folder(uri: str, folder: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme or parts.netloc or parts.query or parts.fragment:
        return None
    path = unquote(parts.path)
    if not path or path.startswith("/"):
        return None
    path = path.removeprefix("./")
    try:
        # Plain segments only: no "..", so the key stays below the playlist's folder.
        return check_key(folder + path)
    except InvalidKey:
        return None
