"""WebDavClient against a real WebDAV server (wsgidav on loopback, mounted under a Nextcloud-like
multi-segment path), plus canned answers (httpx.MockTransport) for what a sane server never sends."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from backend.library import webdav
from backend.library.webdav import (
    DavEntry,
    WebDavAuthError,
    WebDavClient,
    WebDavError,
    WebDavNotFound,
    WebDavUnavailable,
)
from tests.webdav_server import DEFAULT_PASSWORD, DEFAULT_USER, running_webdav_server

BIG = random.Random(7).randbytes(300_000)
TAKE = bytes(range(256)) * 4  # 1024 bytes, each offset easy to check
LIVE = "set #1 \u2013 live"  # a folder with an en dash (non-ASCII, not a letter)
AWKWARD_NAMES = ["take #2 (wild).wav", "Übung.flac", "100% loud.wav", "what?.wav", "a+b&c;d=e.wav"]


@pytest.fixture(scope="module")
def share(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("share")
    (root / "231015" / "groove").mkdir(parents=True)
    (root / "231015" / "groove" / "take1.wav").write_bytes(TAKE)
    (root / "231015" / "groove" / "take2.wav").write_bytes(TAKE[:500])
    (root / "231015" / "loose jam.wav").write_bytes(b"jam")
    (root / "231015" / "empty").mkdir()
    (root / "names" / LIVE).mkdir(parents=True)
    for name in AWKWARD_NAMES:
        (root / "names" / name).write_bytes(name.encode())
        (root / "names" / LIVE / name).write_bytes(name.encode() * 2)
    (root / "big.bin").write_bytes(BIG)
    (root / "notes.txt").write_text("bring the capo")
    (root / "scratch").mkdir()  # tests that change files work below here
    return root


@pytest.fixture(scope="module")
def webdav_url(share: Path) -> Iterator[str]:
    with running_webdav_server(share) as url:
        yield url


@pytest.fixture
async def dav(webdav_url: str) -> AsyncIterator[WebDavClient]:
    async with WebDavClient(
        webdav_url, username=DEFAULT_USER, password=DEFAULT_PASSWORD, timeout=5
    ) as client:
        yield client


@pytest.fixture
def scratch(share: Path, request: pytest.FixtureRequest) -> tuple[Path, str]:
    """A fresh folder for one test: (on disk, path on the share)."""
    name = request.node.name.replace("[", "-").replace("]", "")
    folder = share / "scratch" / name
    folder.mkdir()
    return folder, f"scratch/{name}"


# -- listing -------------------------------------------------------------------------------


async def test_lists_the_root_children_only(dav: WebDavClient, webdav_url: str) -> None:
    assert webdav_url.endswith("/remote.php/dav/files/kim/")
    entries = {entry.path: entry for entry in await dav.list()}

    assert set(entries) == {"231015", "names", "big.bin", "notes.txt", "scratch"}
    assert entries["231015"].is_collection and entries["231015"].name == "231015"
    notes = entries["notes.txt"]
    assert not notes.is_collection
    assert notes.size == len("bring the capo")
    assert notes.etag and '"' not in notes.etag
    assert notes.content_type == "text/plain; charset=utf-8"  # as the server gives it
    assert notes.last_modified is not None and notes.last_modified.tzinfo == UTC
    assert abs(datetime.now(UTC) - notes.last_modified) < timedelta(hours=1)


async def test_lists_a_sub_collection_with_paths_relative_to_the_root(dav: WebDavClient) -> None:
    session = {entry.path: entry for entry in await dav.list("231015")}
    assert set(session) == {"231015/groove", "231015/loose jam.wav", "231015/empty"}
    assert session["231015/groove"].is_collection
    assert session["231015/loose jam.wav"].name == "loose jam.wav"
    assert session["231015/loose jam.wav"].size == 3

    takes = {entry.name: entry for entry in await dav.list("/231015/groove/")}
    assert {name: entry.size for name, entry in takes.items()} == {
        "take1.wav": 1024,
        "take2.wav": 500,
    }
    assert takes["take1.wav"].path == "231015/groove/take1.wav"
    assert takes["take1.wav"].content_type == "audio/x-wav"
    assert takes["take1.wav"].etag != takes["take2.wav"].etag

    assert await dav.list("231015/empty") == []


async def test_stat_agrees_with_list(dav: WebDavClient) -> None:
    root = await dav.stat()
    assert (root.path, root.name, root.is_collection) == ("", "", True)
    for entry in await dav.list("231015"):
        assert await dav.stat(entry.path) == entry


async def test_list_of_a_file_is_an_error(dav: WebDavClient) -> None:
    with pytest.raises(WebDavError):
        await dav.list("notes.txt")


async def test_names_with_spaces_hash_percent_and_unicode(dav: WebDavClient) -> None:
    entries = await dav.list("names")
    assert {entry.name for entry in entries} == {*AWKWARD_NAMES, LIVE}

    nested = await dav.list(f"names/{LIVE}")
    assert {entry.path for entry in nested} == {f"names/{LIVE}/{n}" for n in AWKWARD_NAMES}
    for entry in [*entries, *nested]:
        assert await dav.stat(entry.path) == entry
        if not entry.is_collection:
            expected = entry.name.encode() * (2 if LIVE in entry.path else 1)
            assert entry.size == len(expected)
            assert await dav.read_range(entry.path, 0, 1000) == expected


# -- change markers --------------------------------------------------------------------------


async def test_file_etag_changes_when_the_file_is_rewritten(
    dav: WebDavClient, scratch: tuple[Path, str]
) -> None:
    folder, path = scratch
    (folder / "take.wav").write_bytes(b"first take")
    before = await dav.stat(f"{path}/take.wav")

    (folder / "take.wav").write_bytes(b"second, longer take")
    after = await dav.stat(f"{path}/take.wav")
    assert before.etag and after.etag and after.etag != before.etag

    # Same size, newer mtime: still a new etag.
    stat = (folder / "take.wav").stat()
    (folder / "take.wav").write_bytes(b"third, longer  take")
    os.utime(folder / "take.wav", ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert (await dav.stat(f"{path}/take.wav")).etag not in (before.etag, after.etag)


async def test_wsgidav_file_etag_is_inode_mtime_seconds_and_size(
    dav: WebDavClient, scratch: tuple[Path, str]
) -> None:
    # wsgidav's etag is f"{inode}-{int(mtime)}-{size}": an in-place rewrite with the same size
    # within the same second keeps the etag. Nextcloud's etags do not have this blind spot;
    # with wsgidav a scanner can miss such a rewrite.
    folder, path = scratch
    file = folder / "take.wav"
    file.write_bytes(b"AAAA")
    stat = file.stat()
    before = await dav.stat(f"{path}/take.wav")
    file.write_bytes(b"BBBB")
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (await dav.stat(f"{path}/take.wav")).etag == before.etag


async def test_wsgidav_gives_collections_no_etag(
    dav: WebDavClient, scratch: tuple[Path, str]
) -> None:
    # What the scanner needs to know: wsgidav's filesystem provider has no collection etags
    # (FolderResource.get_etag() returns None; PROPFIND reports getetag in a 404 propstat).
    # So against wsgidav the scanner cannot skip unchanged sub-trees and must walk them all;
    # it must not mistake "no etag" for "unchanged". Nextcloud does give collection etags,
    # which change when anything below changes. The folder's getlastmodified is only the
    # directory's mtime (changes when a direct child is added or removed, not when a file's
    # content or a deeper folder changes), so it is no substitute.
    folder, path = scratch
    (folder / "sub").mkdir()
    before = await dav.stat(path)
    assert before.is_collection and before.etag is None
    assert before.last_modified is not None  # from the 200 propstat of the same response

    (folder / "sub" / "new take.wav").write_bytes(b"new")
    (folder / "added.wav").write_bytes(b"added")
    assert (await dav.stat(path)).etag is None
    listed = {entry.name: entry for entry in await dav.list(path)}
    assert listed["sub"].is_collection and listed["sub"].etag is None
    assert listed["added.wav"].etag is not None


# -- content ---------------------------------------------------------------------------------


async def test_read_range(dav: WebDavClient) -> None:
    assert await dav.read_range("big.bin", 0, 16) == BIG[:16]
    assert await dav.read_range("big.bin", 123_456, 50_000) == BIG[123_456:173_456]
    assert await dav.read_range("big.bin", len(BIG) - 10, 100) == BIG[-10:]  # short at the end
    assert await dav.read_range("big.bin", len(BIG) + 5, 10) == b""  # 416: behind the end
    assert await dav.read_range("big.bin", 10, 0) == b""
    with pytest.raises(ValueError):
        await dav.read_range("big.bin", -1, 10)


async def test_stream_yields_the_whole_file(dav: WebDavClient) -> None:
    chunks = [chunk async for chunk in dav.stream("big.bin", chunk_size=1 << 14)]
    assert b"".join(chunks) == BIG
    assert len(chunks) > 1 and all(len(chunk) <= 1 << 14 for chunk in chunks)


async def test_read_range_reads_only_what_it_needs_when_the_server_ignores_range() -> None:
    produced: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for index in range(100):
            produced.append(index)
            yield BIG[index * 1000 : (index + 1) * 1000]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Range"] == "bytes=1500-2499"
        assert request.headers["Accept-Encoding"] == "identity"
        return httpx.Response(200, content=body())

    async with _mock_client(handler) as dav:
        assert await dav.read_range("big.bin", 1500, 1000) == BIG[1500:2500]
    assert len(produced) <= 4  # not the 100 chunks of the whole file


# -- failures ----------------------------------------------------------------------------------


async def test_wrong_password_is_an_auth_error(webdav_url: str) -> None:
    async with WebDavClient(webdav_url, username=DEFAULT_USER, password="wrong-pw-123") as dav:
        with pytest.raises(WebDavAuthError) as raised:
            await dav.list()
    assert str(raised.value) == "The WebDAV server refused the username or password."
    async with WebDavClient(webdav_url) as anonymous:
        with pytest.raises(WebDavAuthError):
            await anonymous.stat("notes.txt")


async def test_credentials_in_the_url_are_used_and_never_shown(
    webdav_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = webdav_url.replace("http://", f"http://{DEFAULT_USER}:{DEFAULT_PASSWORD}@")
    async with WebDavClient(good) as dav:
        assert (await dav.stat("notes.txt")).size == 14
    bad = webdav_url.replace("http://", f"http://{DEFAULT_USER}:s3cret-Pa55@")
    async with WebDavClient(bad) as dav:
        with pytest.raises(WebDavAuthError) as raised:
            await dav.stat("notes.txt")
    for secret in (DEFAULT_PASSWORD, "s3cret-Pa55"):
        assert secret not in str(raised.value)
        assert secret not in caplog.text


async def test_missing_path_is_not_found(dav: WebDavClient) -> None:
    with pytest.raises(WebDavNotFound):
        await dav.stat("231015/nope.wav")
    with pytest.raises(WebDavNotFound):
        await dav.list("no such folder")
    with pytest.raises(WebDavNotFound):
        await dav.read_range("nope.wav", 0, 10)
    with pytest.raises(WebDavNotFound) as raised:
        async for _ in dav.stream("nope #1.wav"):
            pass
    assert "nope #1.wav" in str(raised.value)


async def test_stopped_server_is_unavailable(tmp_path: Path) -> None:
    with running_webdav_server(tmp_path) as url:
        async with WebDavClient(url, username=DEFAULT_USER, password=DEFAULT_PASSWORD) as dav:
            assert await dav.list() == []
    async with WebDavClient(url, username=DEFAULT_USER, password=DEFAULT_PASSWORD) as dav:
        with pytest.raises(WebDavUnavailable, match="Could not reach"):
            await dav.list()
        with pytest.raises(WebDavUnavailable):
            await dav.read_range("x.wav", 0, 1)


async def test_timeouts_and_server_errors_are_unavailable() -> None:
    def timing_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with _mock_client(timing_out) as dav:
        with pytest.raises(WebDavUnavailable, match="did not answer within 5 seconds"):
            await dav.stat()
    async with _mock_client(lambda _: httpx.Response(503)) as dav:
        with pytest.raises(WebDavUnavailable, match="HTTP 503"):
            await dav.list()
    async with _mock_client(lambda _: httpx.Response(403)) as dav:
        with pytest.raises(WebDavAuthError):
            await dav.list()


async def test_paths_must_not_climb_out_of_the_root() -> None:
    async with _mock_client(lambda _: pytest.fail("no request expected")) as dav:
        with pytest.raises(ValueError):
            await dav.stat("../mallory/secret.wav")
        with pytest.raises(ValueError):
            await dav.list("Rehearsals/../..")


# -- hostile or broken servers -----------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<d:multistatus xmlns:d="DAV:"><d:response><d:href>/remote.php/dav/files/kim/&lol9;</d:href>
</d:response></d:multistatus>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<d:multistatus xmlns:d="DAV:"><d:response><d:href>/remote.php/dav/files/kim/&secret;</d:href>
</d:response></d:multistatus>"""


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"this is not xml", id="not-xml"),
        pytest.param(b'<d:multistatus xmlns:d="DAV:"><d:response><d:href>/x', id="truncated"),
        pytest.param(b"<html><body>Please log in</body></html>", id="not-multistatus"),
        pytest.param(BILLION_LAUGHS, id="billion-laughs"),
        pytest.param(XXE, id="xxe"),
        pytest.param(
            XXE.decode().replace('"1.0"', '"1.0" encoding="utf-16"').encode("utf-16"),
            id="xxe-utf16",
        ),
    ],
)
async def test_unreadable_listings_are_webdav_errors(body: bytes) -> None:
    async with _mock_client(lambda _: httpx.Response(207, content=body)) as dav:
        with pytest.raises(WebDavError, match="not valid"):
            await dav.list()
        with pytest.raises(WebDavError, match="not valid"):
            await dav.stat("x")


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_oversized_listing_is_refused(
    monkeypatch: pytest.MonkeyPatch, declared: bool
) -> None:
    monkeypatch.setattr(webdav, "MAX_PROPFIND_BYTES", 10_000)
    response = b"<d:response><d:href>/remote.php/dav/files/kim/x.wav</d:href></d:response>"
    body = b'<d:multistatus xmlns:d="DAV:">' + response * 1000 + b"</d:multistatus>"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    content = body if declared else chunks()
    async with _mock_client(lambda _: httpx.Response(207, content=content)) as dav:
        with pytest.raises(WebDavError, match="refusing"):
            await dav.list()


NEXTCLOUD_LISTING = """<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" xmlns:oc="http://owncloud.org/ns">
 <d:response>
  <d:href>/remote.php/dav/files/kim%40band/Rehearsals/</d:href>
  <d:propstat><d:prop>
    <d:resourcetype><d:collection/></d:resourcetype>
    <d:getetag>&quot;6543a1b2c3d4e&quot;</d:getetag>
    <d:getlastmodified>Sun, 15 Oct 2023 19:30:00 GMT</d:getlastmodified>
   </d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
  <d:propstat><d:prop><d:getcontentlength/><d:getcontenttype/></d:prop>
   <d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>
 </d:response>
 <d:response>
  <d:href>/remote.php/dav/files/kim@band/Rehearsals/231015%20%C3%9Cbung</d:href>
  <d:propstat><d:prop>
    <d:resourcetype><d:collection/></d:resourcetype>
    <d:getetag>"65439999aaaa"</d:getetag>
   </d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
 </d:response>
 <d:response>
  <d:href>https://cloud.example.com/remote.php/dav/files/kim%40band/Rehearsals/take%20%232%20%2850%25%29.wav</d:href>
  <d:propstat><d:prop>
    <d:resourcetype/>
    <d:getetag>W/"f00d"</d:getetag>
    <d:getcontentlength>1234</d:getcontentlength>
    <d:getlastmodified>Sun, 15 Oct 2023 21:30:00 +0200</d:getlastmodified>
    <d:getcontenttype>audio/wav</d:getcontenttype>
   </d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
 </d:response>
 <d:response><d:href>relative%20one.wav</d:href></d:response>
 <d:response>
  <d:href>/remote.php/dav/files/kim%40band/Rehearsals/broken.wav</d:href>
  <d:propstat><d:prop>
    <d:getcontentlength>lots</d:getcontentlength>
    <d:getlastmodified>yesterday-ish</d:getlastmodified>
   </d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
 </d:response>
 <d:response><d:href>/remote.php/dav/files/kim%40band/Rehearsals/gone.wav</d:href>
  <d:status>HTTP/1.1 404 Not Found</d:status></d:response>
 <d:response><d:href>/remote.php/dav/files/kim%40band/Rehearsals/231015%20%C3%9Cbung/deeper.wav</d:href></d:response>
 <d:response><d:href>/remote.php/dav/files/mallory/secret.wav</d:href></d:response>
 <d:response><d:href>/remote.php/dav/files/kim%40band/Rehearsals/%2E%2E/%2E%2E/x.wav</d:href></d:response>
 <d:response><d:href></d:href></d:response>
</d:multistatus>"""


async def test_nextcloud_style_listing() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(207, text=NEXTCLOUD_LISTING)

    root = "https://cloud.example.com/remote.php/dav/files/kim%40band"  # no trailing slash
    async with _mock_client(handler, root) as dav:
        entries = await dav.list("Rehearsals")

    assert entries == [
        DavEntry("Rehearsals/231015 Übung", "231015 Übung", True, "65439999aaaa", None, None, None),
        DavEntry(
            "Rehearsals/take #2 (50%).wav",
            "take #2 (50%).wav",
            False,
            "W/f00d",
            1234,
            datetime(2023, 10, 15, 19, 30, tzinfo=UTC),
            "audio/wav",
        ),
        DavEntry("Rehearsals/relative one.wav", "relative one.wav", False, None, None, None, None),
        DavEntry("Rehearsals/broken.wav", "broken.wav", False, None, None, None, None),
    ]
    (request,) = requests
    assert request.method == "PROPFIND"
    assert request.url.raw_path == b"/remote.php/dav/files/kim%40band/Rehearsals/"
    assert request.headers["Depth"] == "1"
    assert request.headers["Authorization"].startswith("Basic ")
    for prop in (
        "resourcetype",
        "getetag",
        "getcontentlength",
        "getlastmodified",
        "getcontenttype",
    ):
        assert f"<d:{prop}/>".encode() in request.content
    assert request.content.count(b"/>") == 5  # only those five


async def test_paths_are_percent_encoded_in_requests() -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path)
        return httpx.Response(206, content=b"x", headers={"Content-Range": "bytes 0-0/9"})

    async with _mock_client(handler) as dav:
        await dav.read_range("231015/take #2 (wild).wav", 0, 1)
        await dav.read_range("Übung/100% what?.flac", 0, 1)
    assert seen == [
        b"/remote.php/dav/files/kim/231015/take%20%232%20%28wild%29.wav",
        b"/remote.php/dav/files/kim/%C3%9Cbung/100%25%20what%3F.flac",
    ]


def _mock_client(
    handler: Callable[[httpx.Request], httpx.Response],
    root: str = "https://cloud.example.com/remote.php/dav/files/kim/",
) -> WebDavClient:
    return WebDavClient(
        root,
        username="kim",
        password="pw",
        timeout=5,
        transport=httpx.MockTransport(handler),
    )
