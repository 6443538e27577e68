"""Signed media URLs: a link to one stored object that works without any header until it
expires, so an ``<audio>`` element or hls.js can play it as it is.

    /media/<storage key>?exp=<unix seconds>[&ct=<type>][&fn=<name>[&dl=1]]&sig=<HMAC>

The HMAC-SHA256 covers the key, ``exp`` and the response options (content type, file
name, inline or attachment), so none of them can be changed without the link failing.
Its key is derived from the app's secret (HKDF, label ``backline-media-urls``): a media
link can never be turned into, or be forged with, an access token's key.

One signature names one key, never a prefix. An HLS playlist lists its segments by
relative URI and a player cannot add a query string to them, so the server rewrites the
playlist as it serves it: every segment (and the ``EXT-X-MAP`` init segment) gets a link
of its own with the playlist's expiry (``backend.media.streaming.playlists``). Signing a
prefix would have saved that work, but the rewrite is needed anyway, and per-key links
grant exactly the files the playlist names.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backend.core.settings import Settings
from backend.media.storage.keys import check_key

Disposition = Literal["inline", "attachment"]

MEDIA_PATH = "/media"
# The query parameters a link consists of; anything else in a query is ignored.
EXP, CONTENT_TYPE, FILENAME, DOWNLOAD, SIG = "exp", "ct", "fn", "dl", "sig"
SIGNED_PARAMS = frozenset({EXP, CONTENT_TYPE, FILENAME, DOWNLOAD, SIG})

_HKDF_INFO = b"backline-media-urls"
_VERSION = "backline-media/1"
_EXP = re.compile(r"[1-9][0-9]{0,11}")  # canonical: one spelling per value
_CONTENT_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", re.IGNORECASE)
_MAX_FILENAME = 255
# Expiries fall on a grid (at most this coarse, in seconds): links made within one step are
# identical, so a player's cache still holds the file after the API is asked again.
_MAX_EXPIRY_STEP = 300


class InvalidSignature(Exception):
    """A link that is malformed, tampered with, or for another key; or, with ``expired``,
    one whose signature is right but whose time is up."""

    def __init__(self, why: str, *, expired: bool = False) -> None:
        super().__init__(why)
        self.expired = expired


@dataclass(frozen=True, slots=True)
class Grant:
    """What a valid link allows: this key, until ``expires_at`` (unix seconds), served with
    these response options."""

    key: str
    expires_at: int
    content_type: str | None = None
    filename: str | None = None
    disposition: Disposition = "inline"


class MediaSigner:
    """Signs and verifies media links with a key derived from ``secret`` (the app's secret
    key; it is never used as the HMAC key itself). Derive once, sign many (a playlist)."""

    def __init__(self, secret: bytes | str) -> None:
        material = secret.encode() if isinstance(secret, str) else secret
        if not material:
            raise ValueError("media links need a secret")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
            material
        )
        # The version first: a message of a new format never verifies as an old one.
        self._mac = hmac.new(key, f"{_VERSION}\n".encode(), hashlib.sha256)

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaSigner:
        # Asked once per take on a page of them: derive the key once per secret.
        return _signer_for(settings.resolved_secret_key)

    def sign_url(
        self,
        *,
        key: str,
        expires_at: datetime | int,
        content_type: str | None = None,
        filename: str | None = None,
        disposition: Disposition = "inline",
        base_url: str = "",
    ) -> str:
        """``/media/<key>?exp=…&sig=…``, prefixed by ``base_url`` (e.g. the API's origin,
        for players on another origin). ``content_type`` and ``filename`` are for
        originals, whose keys (``sha256/…``) carry no suffix and no name."""
        grant = Grant(
            key=check_key(key),
            expires_at=_unix(expires_at),
            content_type=_check_content_type(content_type),
            filename=_check_filename(filename),
            disposition=_check_disposition(disposition),
        )
        path = f"{base_url.rstrip('/')}{MEDIA_PATH}/{quote(grant.key, safe='/')}"
        return f"{path}?{self.query(grant)}"

    def query(self, grant: Grant) -> str:
        """The query string of ``grant``'s link (``exp=…&sig=…``); links relative to a
        playlist are built from it (once per segment, so no general URL encoder here)."""
        query = f"{EXP}={grant.expires_at}"
        if grant.content_type is not None:
            query += f"&{CONTENT_TYPE}={quote(grant.content_type, safe='/')}"
        if grant.filename is not None:
            query += f"&{FILENAME}={quote(grant.filename, safe='')}"
        if grant.disposition == "attachment":
            query += f"&{DOWNLOAD}=1"
        # Base64url needs no escaping in a query.
        return f"{query}&{SIG}={self._signature(grant)}"

    def verify(
        self, *, key: str, params: Iterable[tuple[str, str]], now: datetime | None = None
    ) -> Grant:
        """The grant of a link to ``key`` with query ``params`` (as parsed, repeats kept);
        ``InvalidSignature`` unless it was signed here, for this key, and is unexpired.
        The signature is compared in constant time, and before the expiry is looked at."""
        found: dict[str, str] = {}
        for name, value in params:
            if name in SIGNED_PARAMS:
                if name in found:
                    raise InvalidSignature(f"{name} is given twice")
                found[name] = value
        if EXP not in found or SIG not in found:
            raise InvalidSignature("the link has no exp or no sig")
        if not _EXP.fullmatch(found[EXP]):
            raise InvalidSignature("exp is not a time")
        if found.get(DOWNLOAD, "1") != "1":
            raise InvalidSignature("dl is not 1")
        grant = Grant(
            key=key,
            expires_at=int(found[EXP]),
            # Empty is absent, as when signing (so "&fn=" adds no empty header).
            content_type=found.get(CONTENT_TYPE) or None,
            filename=found.get(FILENAME) or None,
            disposition="attachment" if DOWNLOAD in found else "inline",
        )
        expected = self._signature(grant).encode()
        given = found[SIG].encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(expected, given):
            raise InvalidSignature("the signature does not match")
        if grant.expires_at <= _unix(now or datetime.now(UTC)):
            raise InvalidSignature("the link has expired", expired=True)
        return grant

    def _signature(self, grant: Grant) -> str:
        # Each field length-prefixed: no two different grants make the same message,
        # whatever characters a file name holds.
        fields = (
            grant.key,
            str(grant.expires_at),
            grant.content_type or "",
            grant.filename or "",
            grant.disposition,
        )
        mac = self._mac.copy()  # the key's pads are computed once, not per segment
        for field in fields:
            data = field.encode("utf-8", "surrogateescape")
            mac.update(b"%d:%b," % (len(data), data))
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


@functools.lru_cache(maxsize=8)
def _signer_for(secret: str) -> MediaSigner:
    return MediaSigner(secret)


def sign_url(
    *,
    key: str,
    secret: bytes | str,
    expires_at: datetime | int,
    content_type: str | None = None,
    filename: str | None = None,
    disposition: Disposition = "inline",
    base_url: str = "",
) -> str:
    """One link (see ``MediaSigner.sign_url``); make a ``MediaSigner`` to sign several."""
    return MediaSigner(secret).sign_url(
        key=key,
        expires_at=expires_at,
        content_type=content_type,
        filename=filename,
        disposition=disposition,
        base_url=base_url,
    )


def verify(
    *,
    key: str,
    params: Iterable[tuple[str, str]],
    secret: bytes | str,
    now: datetime | None = None,
) -> Grant:
    """The grant of one link (see ``MediaSigner.verify``)."""
    return MediaSigner(secret).verify(key=key, params=params, now=now)


def stream_expiry(settings: Settings, *, now: datetime | None = None) -> datetime:
    """When links made now expire: ``stream_url_minutes`` from now, rounded down to a
    grid of at most 5 minutes (a twelfth of the lifetime when that is shorter), so links
    asked for a moment apart are the same URL and a player's cache keeps working."""
    lifetime = settings.stream_url_minutes * 60
    step = max(1, min(_MAX_EXPIRY_STEP, lifetime // 12))
    until = _unix(now or datetime.now(UTC)) + lifetime
    return datetime.fromtimestamp(until - until % step, UTC)


def _unix(moment: datetime | int) -> int:
    if isinstance(moment, int):
        return moment
    if moment.tzinfo is None:
        raise ValueError("expiry times must be timezone-aware (UTC)")
    return int(moment.timestamp())


def _check_content_type(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    # Parameters (charset) are not needed for media and would only widen what is signed.
    bare = content_type.split(";", 1)[0].strip().lower()
    if not _CONTENT_TYPE.fullmatch(bare):
        raise ValueError(f"not a content type: {content_type!r}")
    return bare


def _check_filename(filename: str | None) -> str | None:
    if filename is None:
        return None
    # Only the last path part; control characters could break the header.
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if char.isprintable()).strip()[:_MAX_FILENAME]
    return name or None


def _check_disposition(disposition: str) -> Disposition:
    if disposition == "inline":
        return "inline"
    if disposition == "attachment":
        return "attachment"
    raise ValueError(f"disposition is inline or attachment, not {disposition!r}")


__all__ = [
    "Grant",
    "InvalidSignature",
    "MediaSigner",
    "sign_url",
    "stream_expiry",
    "verify",
]
