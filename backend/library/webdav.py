"""Async WebDAV client for scanning a share (Nextcloud, ownCloud, Apache mod_dav, wsgidav...).

Only what a scan needs: PROPFIND Depth 0/1 for metadata, GET (ranged or streamed) for
content. Paths are always relative to the root URL ('' is the root, '/'-separated, decoded);
the client does the percent-encoding. The server is not trusted: listings are size-capped,
XML with a DOCTYPE is refused, and anything unreadable becomes a ``WebDavError``.

    async with WebDavClient(url, username="kim", password=secret) as dav:
        for entry in await dav.list("231015"):
            ...
"""

from __future__ import annotations

import asyncio
import builtins  # WebDavClient.list shadows `list` in the class's annotations
import logging
import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import NoReturn, Self
from urllib.parse import quote, unquote, urljoin, urlsplit

import httpx

try:  # Optional second guard: the DOCTYPE check below already stops XXE and entity bombs.
    from defusedxml.ElementTree import fromstring as _xml_fromstring
except ImportError:  # pragma: no cover - depends on the environment
    from xml.etree.ElementTree import fromstring as _xml_fromstring

logger = logging.getLogger(__name__)

__all__ = [
    "DavEntry",
    "WebDavAuthError",
    "WebDavClient",
    "WebDavError",
    "WebDavNotFound",
    "WebDavUnavailable",
]

# A listing of ~100k files is ~50 MB of XML; anything bigger is a broken or hostile server.
MAX_PROPFIND_BYTES = 50 * 1024 * 1024
# Parsing blocks; above this size do it in a thread so the event loop keeps serving.
_PARSE_IN_THREAD_BYTES = 1024 * 1024

_DAV = "{DAV:}"
_PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<d:propfind xmlns:d="DAV:"><d:prop>'
    b"<d:resourcetype/><d:getetag/><d:getcontentlength/>"
    b"<d:getlastmodified/><d:getcontenttype/>"
    b"</d:prop></d:propfind>"
)
# Any DTD is refused: multistatus never needs one, and it is how XXE and entity bombs start.
_DTD_MARKUP = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_STATUS_CODE = re.compile(r"^\s*HTTP/\S+\s+(\d{3})")
_CONTENT_RANGE_START = re.compile(r"^\s*bytes\s+(\d+)-", re.IGNORECASE)
# Byte ranges refer to the encoded body, so content must come unencoded.
_IDENTITY = {"Accept-Encoding": "identity"}


@dataclass(frozen=True)
class DavEntry:
    path: str  # decoded, relative to the root, '/'-separated, no leading slash; '' is the root
    name: str  # last segment of path ('' for the root)
    is_collection: bool
    etag: str | None  # quotes stripped; a weak tag keeps its "W/" prefix
    size: int | None
    last_modified: datetime | None  # UTC
    content_type: str | None


class WebDavError(Exception):
    """Something went wrong talking to the WebDAV server; the message is for people."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class WebDavAuthError(WebDavError):
    """401/403: wrong credentials or no permission."""


class WebDavNotFound(WebDavError):
    """404/410: the path does not exist (any more)."""


class WebDavUnavailable(WebDavError):
    """Cannot reach the server, it timed out, or it answered 5xx/429: worth retrying later."""


class WebDavClient:
    def __init__(
        self,
        root_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url = httpx.URL(root_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("A WebDAV address starts with http:// or https:// and names a host.")
        # Credentials in the URL are moved to the auth object so no URL we log carries them.
        if url.userinfo and username is None:
            username, password = url.username, url.password
        url = url.copy_with(userinfo=b"", query=None, fragment=None)
        base = str(url)
        self._base = base if base.endswith("/") else base + "/"
        self._root_path = _normalise(urlsplit(self._base).path)
        self._host = url.host
        self._timeout = timeout
        self._client = httpx.AsyncClient(
            auth=httpx.BasicAuth(username, password or "") if username is not None else None,
            timeout=timeout,
            transport=transport,
            follow_redirects=True,  # e.g. Apache redirects a collection without its '/'
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- metadata -------------------------------------------------------------------------

    async def stat(self, path: str = "") -> DavEntry:
        """The entry at ``path`` (PROPFIND Depth 0)."""
        path = _clean(path)
        responses, url = await self._propfind(path, depth="0", collection=False)
        entries = [entry for r in responses if (entry := self._entry(r, url)) is not None]
        for entry in entries:
            if entry.path == path:
                return entry
        # Depth 0 describes exactly the resource asked for, even when the server spells its
        # href differently (say, Unicode NFD); keep the caller's path then.
        if len(responses) == 1 and _succeeded(responses[0]):
            return _with_path(self._props(responses[0]), path)
        raise WebDavError(f"The WebDAV server sent no details for '{path or '/'}'.")

    async def list(self, path: str = "") -> builtins.list[DavEntry]:
        """The direct children of the collection at ``path`` (PROPFIND Depth 1)."""
        _, children = await self.listing(path)
        return children

    async def listing(self, path: str = "") -> tuple[DavEntry | None, builtins.list[DavEntry]]:
        """The collection at ``path`` itself (None if the server left it out) and its
        direct children, from one PROPFIND Depth 1: a scan compares the collection's etag
        before looking at its children."""
        path = _clean(path)
        responses, url = await self._propfind(path, depth="1", collection=True)
        entries = [entry for r in responses if (entry := self._entry(r, url)) is not None]
        if responses and not entries:
            # Every href lies outside the root (a reverse proxy rewriting paths, say). An empty
            # list would read as "everything was deleted", so fail loudly instead.
            raise WebDavError(
                f"The WebDAV server at {self._host} answers with addresses outside "
                f"/{self._root_path}; check the WebDAV address."
            )
        itself: DavEntry | None = None
        children: builtins.list[DavEntry] = []
        for entry in entries:
            if entry.path == path:
                if not entry.is_collection:
                    raise WebDavError(f"'{path}' is a file, not a folder.")
                itself = entry
            elif posixpath.dirname(entry.path) == path:
                children.append(entry)
            else:  # deeper than Depth 1 asked for: not ours to report
                logger.debug("WebDAV listing of %r: ignored entry %r", path, entry.path)
        return itself, children

    # -- content --------------------------------------------------------------------------

    async def read_range(self, path: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from offset ``start`` (fewer at the end of the file)."""
        if start < 0 or length < 0:
            raise ValueError("start and length must not be negative")
        path = _clean(path)
        if length == 0:
            return b""
        headers = {**_IDENTITY, "Range": f"bytes={start}-{start + length - 1}"}
        async with self._send("GET", path, headers=headers) as response:
            if response.status_code == 416:  # starts at or behind the end: like file.read()
                return b""
            self._check(response, path, expected=(200, 206))
            skip = 0
            if response.status_code == 206:
                match = _CONTENT_RANGE_START.match(response.headers.get("Content-Range", ""))
                if match and int(match.group(1)) != start:
                    raise WebDavError(f"The WebDAV server sent the wrong part of '{path}'.")
            else:  # 200: the server ignored Range; skip to start and stop once we have enough
                skip = start
            data = bytearray()
            with self._reading(path):
                async for chunk in response.aiter_bytes():
                    dropped = min(skip, len(chunk))
                    skip -= dropped
                    data += chunk[dropped : dropped + length - len(data)]
                    if len(data) >= length:
                        break  # closing the unread response drops the connection, no draining
            return bytes(data)

    async def stream(self, path: str, chunk_size: int = 1 << 16) -> AsyncIterator[bytes]:
        """The file's bytes in chunks. Stopping early? Close it with ``contextlib.aclosing``."""
        path = _clean(path)
        async with self._send("GET", path, headers=_IDENTITY) as response:
            self._check(response, path, expected=(200,))
            with self._reading(path):
                async for chunk in response.aiter_bytes(chunk_size):
                    yield chunk

    # -- internals ------------------------------------------------------------------------

    def _url(self, path: str, *, collection: bool = False) -> str:
        url = self._base + quote(path, safe="/")
        return url + "/" if collection and path else url

    @asynccontextmanager
    async def _send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        content: bytes | None = None,
        collection: bool = False,
    ) -> AsyncIterator[httpx.Response]:
        """One streamed request; failures to connect become WebDavUnavailable."""
        url = self._url(path, collection=collection)
        request = self._client.build_request(method, url, headers=headers, content=content)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException as error:
            raise self._timed_out() from error
        except httpx.TooManyRedirects as error:
            raise WebDavError(
                f"The WebDAV server at {self._host} redirects '{path or '/'}' in circles."
            ) from error
        except httpx.TransportError as error:
            raise WebDavUnavailable(
                f"Could not reach the WebDAV server at {self._host} ({type(error).__name__})."
            ) from error
        try:
            yield response
        finally:
            await response.aclose()

    @contextmanager
    def _reading(self, path: str) -> Iterator[None]:
        """A connection that breaks while a body is read is WebDavUnavailable too."""
        try:
            yield
        except httpx.TimeoutException as error:
            raise self._timed_out() from error
        except httpx.TransportError as error:
            raise WebDavUnavailable(
                f"The connection to the WebDAV server at {self._host} broke while reading "
                f"'{path or '/'}'."
            ) from error

    async def _propfind(
        self, path: str, *, depth: str, collection: bool
    ) -> tuple[builtins.list[ET.Element], str]:
        """The <response> elements and the URL that answered (hrefs may be relative to it)."""
        headers = {"Depth": depth, "Content-Type": 'application/xml; charset="utf-8"'}
        body = bytearray()
        async with self._send(
            "PROPFIND", path, headers=headers, content=_PROPFIND_BODY, collection=collection
        ) as response:
            self._check(response, path, expected=(207,))
            declared = response.headers.get("Content-Length", "")
            if _is_number(declared) and int(declared) > MAX_PROPFIND_BYTES:
                raise _too_big(path)
            with self._reading(path):
                async for chunk in response.aiter_bytes():
                    body += chunk  # decoded bytes, so a gzip bomb hits the cap too
                    if len(body) > MAX_PROPFIND_BYTES:
                        raise _too_big(path)
            url = str(response.url)
        if len(body) > _PARSE_IN_THREAD_BYTES:
            root = await asyncio.to_thread(_parse_multistatus, bytes(body), path)
        else:
            root = _parse_multistatus(bytes(body), path)
        return root.findall(f"{_DAV}response"), url

    def _check(self, response: httpx.Response, path: str, *, expected: tuple[int, ...]) -> None:
        if response.status_code not in expected:
            _raise_for_status(
                response.status_code, path or "/", self._host, response.request.method
            )

    def _timed_out(self) -> WebDavUnavailable:
        return WebDavUnavailable(
            f"The WebDAV server at {self._host} did not answer within {self._timeout:g} seconds."
        )

    def _entry(self, response: ET.Element, request_url: str) -> DavEntry | None:
        """One <response> as an entry; None when it reports a failure or lies outside the root."""
        if not _succeeded(response):
            return None
        path = self._relative_path(response.findtext(f"{_DAV}href"), request_url)
        return None if path is None else _with_path(self._props(response), path)

    def _props(self, response: ET.Element) -> DavEntry:
        """The properties of one <response>, with an empty path (the caller sets it)."""
        props: dict[str, ET.Element] = {}
        for propstat in response.findall(f"{_DAV}propstat"):
            status = _status(propstat.findtext(f"{_DAV}status"))
            if status is not None and not 200 <= status < 300:
                continue  # e.g. wsgidav's 404 propstat for a folder's getetag
            for prop in propstat.findall(f"{_DAV}prop"):
                props.update((child.tag, child) for child in prop)
        resourcetype = props.get(f"{_DAV}resourcetype")
        if resourcetype is not None:
            is_collection = resourcetype.find(f"{_DAV}collection") is not None
        else:  # no resourcetype: a trailing slash is the only hint left
            is_collection = (response.findtext(f"{_DAV}href") or "").strip().endswith("/")
        return DavEntry(
            path="",
            name="",
            is_collection=is_collection,
            etag=_etag(_text(props, "getetag")),
            size=_size(_text(props, "getcontentlength")),
            last_modified=_http_date(_text(props, "getlastmodified")),
            content_type=_text(props, "getcontenttype"),
        )

    def _relative_path(self, href: str | None, request_url: str) -> str | None:
        """Map an href (absolute URL, absolute or relative path; percent-encoded) to a path
        relative to the root, or None when it lies outside the root."""
        if not href or not href.strip():
            return None
        target = _normalise(urlsplit(urljoin(request_url, href.strip())).path)
        root = self._root_path
        if target == root:
            return ""
        if root and not target.startswith(root + "/"):
            return None
        relative = target[len(root) :].strip("/")
        return None if ".." in relative.split("/") else relative


def _raise_for_status(status: int, path: str, host: str | None, method: str) -> NoReturn:
    if status == 401:
        raise WebDavAuthError(
            "The WebDAV server refused the username or password.", status_code=status
        )
    if status == 403:
        raise WebDavAuthError(
            f"The WebDAV server does not allow this account to read '{path}'.", status_code=status
        )
    if status in (404, 410):
        raise WebDavNotFound(f"'{path}' does not exist on the WebDAV server.", status_code=status)
    if status >= 500 or status in (408, 429):
        raise WebDavUnavailable(
            f"The WebDAV server at {host} is not available right now (HTTP {status}).",
            status_code=status,
        )
    raise WebDavError(
        f"The WebDAV server at {host} answered {method} '{path}' with HTTP {status}; "
        "is the address a WebDAV folder?",
        status_code=status,
    )


def _parse_multistatus(body: bytes, path: str) -> ET.Element:
    unreadable = WebDavError(
        f"The WebDAV server sent a listing of '{path or '/'}' that is not valid."
    )
    # NUL bytes mean UTF-16/32, which would hide a DOCTYPE from the check after it.
    if b"\x00" in body or _DTD_MARKUP.search(body):
        raise unreadable
    try:
        root = _xml_fromstring(body)
    except (ET.ParseError, ValueError) as error:  # defusedxml's errors are ValueErrors
        raise unreadable from error
    if root.tag != f"{_DAV}multistatus":
        raise unreadable
    return root


def _too_big(path: str) -> WebDavError:
    return WebDavError(
        f"The WebDAV server sent a listing of '{path or '/'}' larger than "
        f"{MAX_PROPFIND_BYTES // (1024 * 1024)} MB; refusing to read it."
    )


def _clean(path: str) -> str:
    """A caller's path as 'a/b' (no empty or '.' segments); '..' could escape the root."""
    segments = [segment for segment in path.split("/") if segment not in ("", ".")]
    if ".." in segments:
        raise ValueError(f"A WebDAV path must not contain '..': {path!r}")
    return "/".join(segments)


def _normalise(url_path: str) -> str:
    """Decode a URL path and drop empty segments, so '/a%20b//c/' and '/a b/c' compare equal."""
    return "/".join(segment for segment in unquote(url_path).split("/") if segment)


def _with_path(entry: DavEntry, path: str) -> DavEntry:
    return DavEntry(
        path=path,
        name=path.rpartition("/")[2],
        is_collection=entry.is_collection,
        etag=entry.etag,
        size=entry.size,
        last_modified=entry.last_modified,
        content_type=entry.content_type,
    )


def _text(props: dict[str, ET.Element], name: str) -> str | None:
    element = props.get(f"{_DAV}{name}")
    text = (element.text or "").strip() if element is not None else ""
    return text or None


def _succeeded(response: ET.Element) -> bool:
    """A <response> may carry its own status (e.g. 404 for a member that vanished)."""
    status = _status(response.findtext(f"{_DAV}status"))
    return status is None or 200 <= status < 300


def _status(line: str | None) -> int | None:
    match = _STATUS_CODE.match(line or "")
    return int(match.group(1)) if match else None


def _etag(value: str | None) -> str | None:
    if value is None:
        return None
    weak = value.startswith("W/")
    value = value.removeprefix("W/").strip().strip('"')
    return (f"W/{value}" if weak else value) or None


def _is_number(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _size(value: str | None) -> int | None:
    return int(value) if value is not None and _is_number(value) else None


def _http_date(value: str | None) -> datetime | None:
    """RFC 1123 as the spec says; ISO 8601 as some servers send anyway. Naive means UTC."""
    if value is None:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
