"""Storage keys: how objects are named, and the checks that keep every key inside the
storage root (a folder or a bucket), whoever made it up.

    sha256/ab/cd/abcd…         content-addressed bytes: uploads, single derived files
    renditions/<id>/<format>/  a transcode's files (HLS playlist + segments), by prefix
    uploads/<random>/<name>    a browser's multipart upload until a worker adopts it
    tmp/<random>               a stream being written; moved to its content address

Derived *multi-file* outputs are stored under a prefix, not by content: an HLS playlist
names its segments by relative URI, so content-addressing them would mean rewriting the
playlist; their bytes are never shared between versions (each is its own encode), so there
is nothing to deduplicate; and a prefix can be replaced or deleted as one
(``delete_prefix``) when a version is transcoded again or removed.
"""

from __future__ import annotations

import re
import uuid

from backend.media.storage.errors import InvalidKey

CONTENT_PREFIX = "sha256/"
RENDITIONS_PREFIX = "renditions/"
UPLOADS_PREFIX = "uploads/"
TEMP_PREFIX = "tmp/"
# Written only by the storage itself: an explicit key may not land in these.
RESERVED_PREFIXES = (CONTENT_PREFIX, UPLOADS_PREFIX, TEMP_PREFIX)

# The storage_key columns of assets and renditions are String(500).
MAX_KEY_LENGTH = 500
_SEGMENT = re.compile(r"[A-Za-z0-9._=+,@-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def check_key(key: str) -> str:
    """``key`` if it is a relative path of plain segments (no ``..``, no leading ``/``)."""
    if not isinstance(key, str) or not key:
        raise InvalidKey(key, "it is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(key, f"it is longer than {MAX_KEY_LENGTH} characters")
    if key.startswith("/"):
        raise InvalidKey(key, "it must be relative, not absolute")
    for segment in key.split("/"):
        if not segment:
            raise InvalidKey(key, "it has an empty path segment")
        if set(segment) == {"."}:
            raise InvalidKey(key, "'.' and '..' are not allowed")
        if not _SEGMENT.fullmatch(segment):
            raise InvalidKey(key, "only letters, digits and . _ = + , @ - are allowed")
    return key


def check_writable_key(key: str) -> str:
    """A key a caller may write to by name: valid and outside the storage's own areas."""
    check_key(key)
    if key.startswith(RESERVED_PREFIXES):
        raise InvalidKey(key, f"{key.split('/')[0]}/ is written by the storage only")
    return key


def check_prefix(prefix: str) -> str:
    """A folder-like prefix, returned with one trailing ``/`` so that ``a/1`` never
    matches ``a/10``. The empty prefix (everything) is refused."""
    return check_key(prefix.rstrip("/")) + "/"


def check_upload_key(key: str) -> str:
    """A key made by ``create_multipart``, as a client hands it back."""
    check_key(key)
    if not key.startswith(UPLOADS_PREFIX):
        raise InvalidKey(key, "not a multipart upload's key")
    return key


def content_key(sha256_hex: str) -> str:
    """Where the bytes with this sha256 live: ``sha256/ab/cd/abcd…``."""
    if not _SHA256.fullmatch(sha256_hex):
        raise ValueError(f"not a lowercase hex sha256: {sha256_hex!r}")
    return f"{CONTENT_PREFIX}{sha256_hex[:2]}/{sha256_hex[2:4]}/{sha256_hex}"


def rendition_prefix(*, version_id: int, format: str) -> str:
    """The prefix a transcode's files go under, e.g. ``renditions/42/hls/``."""
    return check_prefix(f"{RENDITIONS_PREFIX}{int(version_id)}/{format}")


def temp_key() -> str:
    return f"{TEMP_PREFIX}{uuid.uuid4().hex}"


def upload_key(key_hint: str) -> str:
    """A fresh key for a multipart upload, ending in a tidied form of the file name."""
    name = _UNSAFE_IN_NAME.sub("_", key_hint.rsplit("/", 1)[-1])[-100:].strip("._")
    return f"{UPLOADS_PREFIX}{uuid.uuid4().hex}/{name or 'upload'}"
