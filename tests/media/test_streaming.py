"""Signed media links and the routes that serve them, against a real uvicorn on loopback
and on both storage backends (``storage``: a local folder, and S3 through moto): whole
files and byte ranges as players ask for them, refusals (403 before storage, 404, 416),
HLS playlists whose segments come back signed, CORS, and a 50 MB file streamed in flat
memory."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import random
import re
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from backend.core.settings import Settings
from backend.media.decode import find_ffmpeg
from backend.media.signing import (
    Grant,
    InvalidSignature,
    MediaSigner,
    sign_url,
    stream_expiry,
    verify,
)
from backend.media.storage import InvalidKey, LocalStorage, Storage, content_key
from backend.media.storage.base import MIB
from backend.media.streaming import create_media_router
from backend.media.streaming.playlists import rewrite
from backend.media.streaming.ranges import ByteRange, Unsatisfiable, parse_range
from tests.live_server import eventually, serve

SECRET = "streaming-test-secret-key"
DATA = random.Random(3).randbytes(10_000)
PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="init.mp4"
#EXTINF:4.0,
seg_000.m4s
#EXTINF:4.0,
seg_001.m4s
#EXTINF:2.5,
seg_002.m4s
#EXT-X-ENDLIST
"""
HLS = "renditions/42/hls/"


def in_minutes(minutes: float) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def query_of(link: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(link).query, keep_blank_values=True)


# -- signing ---------------------------------------------------------------------


def test_a_link_names_its_key_and_verifies():
    link = sign_url(key="renditions/7/mp3/take.mp3", secret=SECRET, expires_at=in_minutes(5))
    assert re.fullmatch(r"/media/renditions/7/mp3/take\.mp3\?exp=\d+&sig=[A-Za-z0-9_-]{43}", link)
    grant = verify(key="renditions/7/mp3/take.mp3", params=query_of(link), secret=SECRET)
    assert grant.key == "renditions/7/mp3/take.mp3"
    assert grant.content_type is None and grant.filename is None


def test_response_options_are_signed_too():
    signer = MediaSigner(SECRET)
    key = content_key("ab" * 32)
    link = signer.sign_url(
        key=key,
        expires_at=in_minutes(5),
        content_type="Audio/WAV; charset=binary",
        filename="../Kim's take 2 (café).wav",
        disposition="attachment",
        base_url="https://api.example.org/",
    )
    assert link.startswith(f"https://api.example.org/media/{key}?exp=")
    grant = signer.verify(key=key, params=query_of(link))
    assert grant == Grant(
        key=key,
        expires_at=grant.expires_at,
        content_type="audio/wav",
        filename="Kim's take 2 (café).wav",
        disposition="attachment",
    )
    for name, value in [("ct", "text/html"), ("fn", "evil.html"), ("dl", "0")]:
        changed = [(n, value if n == name else v) for n, v in query_of(link)]
        with pytest.raises(InvalidSignature):
            signer.verify(key=key, params=changed)
    without_download = [(n, v) for n, v in query_of(link) if n != "dl"]
    with pytest.raises(InvalidSignature):
        signer.verify(key=key, params=without_download)


@pytest.mark.parametrize(
    "change",
    [
        "key",
        "exp",
        "sig",
        "missing exp",
        "missing sig",
        "exp twice",
        "sig twice",
        "exp with a leading zero",
        "other secret",
    ],
)
def test_tampered_links_are_refused(change: str):
    key = "renditions/7/mp3/take.mp3"
    signer = MediaSigner(SECRET)
    params = query_of(signer.sign_url(key=key, expires_at=in_minutes(5)))
    exp, sig = dict(params)["exp"], dict(params)["sig"]
    secret = SECRET
    match change:
        case "key":
            key = "renditions/8/mp3/take.mp3"
        case "exp":
            params = [("exp", str(int(exp) + 3600)), ("sig", sig)]
        case "sig":
            params = [("exp", exp), ("sig", ("A" if sig[0] != "A" else "B") + sig[1:])]
        case "missing exp":
            params = [("sig", sig)]
        case "missing sig":
            params = [("exp", exp)]
        case "exp twice":
            params = [*params, ("exp", str(int(exp) + 3600))]
        case "sig twice":
            params = [*params, ("sig", sig)]
        case "exp with a leading zero":
            params = [("exp", "0" + exp), ("sig", sig)]
        case "other secret":
            secret = SECRET + "!"
    with pytest.raises(InvalidSignature) as refused:
        verify(key=key, params=params, secret=secret)
    assert not refused.value.expired


def test_an_expired_link_is_refused_as_expired():
    signer = MediaSigner(SECRET)
    link = signer.sign_url(key="renditions/7/mp3/take.mp3", expires_at=in_minutes(-1))
    with pytest.raises(InvalidSignature) as refused:
        signer.verify(key="renditions/7/mp3/take.mp3", params=query_of(link))
    assert refused.value.expired
    # Valid until its second, not after.
    exp = int(dict(query_of(link))["exp"])
    just_before = datetime.fromtimestamp(exp - 1, UTC)
    signer.verify(key="renditions/7/mp3/take.mp3", params=query_of(link), now=just_before)


def test_unknown_parameters_are_ignored():
    """A player or a proxy may add a cache-buster; it changes nothing that is signed."""
    signer = MediaSigner(SECRET)
    link = signer.sign_url(key="renditions/7/mp3/take.mp3", expires_at=in_minutes(5))
    signer.verify(key="renditions/7/mp3/take.mp3", params=[*query_of(link), ("_", "123")])


def test_the_hmac_key_is_derived_not_the_secret_itself():
    link = sign_url(key="renditions/7/mp3/take.mp3", secret=SECRET, expires_at=in_minutes(5))
    params = dict(query_of(link))
    for message in ("renditions/7/mp3/take.mp3" + params["exp"], params["exp"]):
        raw = hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).digest()
        assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != params["sig"]
    assert sign_url(key="a/b", secret=SECRET, expires_at=10**10) == sign_url(
        key="a/b", secret=SECRET.encode(), expires_at=10**10
    )


@pytest.mark.parametrize("key", ["../etc/passwd", "/etc/passwd", "a//b", "a/./b", "a b", ""])
def test_keys_that_leave_the_storage_cannot_be_signed(key: str):
    with pytest.raises(InvalidKey):
        sign_url(key=key, secret=SECRET, expires_at=in_minutes(5))


def test_bad_options_are_refused():
    with pytest.raises(ValueError):
        sign_url(key="a/b", secret=SECRET, expires_at=datetime.now() + timedelta(minutes=1))
    with pytest.raises(ValueError):
        sign_url(key="a/b", secret=SECRET, expires_at=in_minutes(1), content_type="audio")
    with pytest.raises(ValueError):
        sign_url(key="a/b", secret=SECRET, expires_at=in_minutes(1), disposition="evil")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MediaSigner("")


def test_stream_expiry_follows_the_setting(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BACKLINE_STREAM_URL_MINUTES", "90")
    settings = Settings()
    assert settings.stream_url_minutes == 90
    now = datetime(2026, 1, 1, 12, 0, 7, tzinfo=UTC)
    expiry = stream_expiry(settings, now=now)
    # 90 minutes, on a 5-minute grid: links asked for within one step are the same URL.
    assert timedelta(minutes=85) < expiry - now <= timedelta(minutes=90)
    assert int(expiry.timestamp()) % 300 == 0
    assert stream_expiry(settings, now=now + timedelta(seconds=100)) == expiry
    assert Settings.model_fields["stream_url_minutes"].default == 360
    short = stream_expiry(Settings(stream_url_minutes=1), now=now)
    assert timedelta(seconds=55) <= short - now <= timedelta(minutes=1)


# -- ranges and playlists, on their own ------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=0-", ByteRange(0, 999)),
        ("bytes=990-5000", ByteRange(990, 999)),
        ("bytes=-10", ByteRange(990, 999)),
        ("bytes=-5000", ByteRange(0, 999)),
        ("bytes=999-999", ByteRange(999, 999)),
        ("Bytes = 5 - 6 ", ByteRange(5, 6)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
    ],
)
def test_parse_range(header: str | None, expected: ByteRange | None):
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=1000-",
        "bytes=5-4",
        "bytes=-0",
        "bytes=-",
        "bytes=a-b",
        "bytes=0-1,x",
        "items=0-1",
        "bytes 0-1",
        "bytes=" + "9" * 30 + "-",
    ],
)
def test_parse_range_refuses(header: str):
    with pytest.raises(Unsatisfiable):
        parse_range(header, 1000)


def test_no_range_of_an_empty_file():
    assert parse_range(None, 0) is None
    for header in ("bytes=0-", "bytes=-1", "bytes=0-0"):
        with pytest.raises(Unsatisfiable):
            parse_range(header, 0)


def test_rewrite_signs_only_files_in_the_playlists_folder():
    text = (
        '#EXTM3U\r\n#EXT-X-MAP:URI="init.mp4"\r\n#EXTINF:4,\r\nseg_0.m4s\r\n'
        "#EXTINF:4,\r\n../../43/hls/seg_0.m4s\r\n#EXTINF:4,\r\n/media/other\r\n"
        "#EXTINF:4,\r\nhttps://cdn.example.org/x.m4s\r\n#EXTINF:4,\r\nsub/seg_1.m4s\r\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x",URI="../x.m3u8"\r\n# a comment\r\n'
    )
    out = rewrite(text, playlist_key=HLS + "index.m3u8", query_for=lambda key: f"k={key}")
    assert out.splitlines() == [
        "#EXTM3U",
        f'#EXT-X-MAP:URI="init.mp4?k={HLS}init.mp4"',
        "#EXTINF:4,",
        f"seg_0.m4s?k={HLS}seg_0.m4s",
        "#EXTINF:4,",
        "../../43/hls/seg_0.m4s",
        "#EXTINF:4,",
        "/media/other",
        "#EXTINF:4,",
        "https://cdn.example.org/x.m4s",
        "#EXTINF:4,",
        f"sub/seg_1.m4s?k={HLS}sub/seg_1.m4s",
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x",URI="../x.m3u8"',
        "# a comment",
    ]
    assert out.count("\r\n") == text.count("\r\n")


# -- over HTTP -------------------------------------------------------------------


@dataclass
class Media:
    client: httpx.AsyncClient
    host: str
    signer: MediaSigner
    storage: Storage

    def link(self, key: str, *, minutes: float = 10, **options: Any) -> str:
        return self.signer.sign_url(key=key, expires_at=in_minutes(minutes), **options)

    async def get(self, url: str, **headers: str) -> httpx.Response:
        return await self.client.get(
            url, headers={name.replace("_", "-"): value for name, value in headers.items()}
        )

    async def raw(self, target: str) -> tuple[int, bytes]:
        """A request whose target goes out exactly as written (httpx would tidy ``..``
        away): the status and the body."""
        host, port = self.host.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            response = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body


def media_app(storage: Storage, signer: MediaSigner) -> FastAPI:
    app = FastAPI()
    app.include_router(create_media_router(signer=signer))
    app.state.storage = storage
    return app


@pytest.fixture
async def media(storage: Storage) -> AsyncIterator[Media]:
    signer = MediaSigner(SECRET)
    async with (
        serve(media_app(storage, signer)) as host,
        httpx.AsyncClient(base_url=f"http://{host}", timeout=30) as client,
    ):
        yield Media(client=client, host=host, signer=signer, storage=storage)


async def store_original(media: Media, data: bytes = DATA) -> str:
    return (await media.storage.put_bytes(data)).key


async def store_hls(media: Media) -> dict[str, bytes]:
    files = {
        "index.m3u8": PLAYLIST.encode(),
        "init.mp4": b"init-segment" * 10,
        "seg_000.m4s": random.Random(0).randbytes(3000),
        "seg_001.m4s": random.Random(1).randbytes(3000),
        "seg_002.m4s": random.Random(2).randbytes(1500),
    }
    for name, data in files.items():
        await media.storage.put_bytes(data, key=HLS + name)
    return files


async def test_the_whole_original(media: Media):
    key = await store_original(media)
    link = media.link(key, content_type="audio/wav", filename="take 2 (café).wav")
    response = await media.get(link)
    assert response.status_code == 200
    assert response.content == DATA
    headers = response.headers
    assert headers["content-length"] == str(len(DATA))
    assert headers["accept-ranges"] == "bytes"
    assert headers["content-type"] == "audio/wav"
    assert headers["etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert headers["content-disposition"] == (
        "inline; filename=\"take 2 (caf_).wav\"; filename*=UTF-8''take%202%20%28caf%C3%A9%29.wav"
    )
    assert headers["x-content-type-options"] == "nosniff"
    max_age = int(re.fullmatch(r"private, max-age=(\d+)", headers["cache-control"])[1])
    assert 590 <= max_age <= 600
    assert headers["access-control-allow-origin"] == "*"
    assert "Content-Range" in headers["access-control-expose-headers"]


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-", 0, 9999),  # what <audio> sends first
        ("bytes=0-0", 0, 0),
        ("bytes=100-199", 100, 199),
        ("bytes=9000-", 9000, 9999),
        ("bytes=9990-20000", 9990, 9999),
        ("bytes=-500", 9500, 9999),
        ("bytes=-20000", 0, 9999),
    ],
)
async def test_byte_ranges(media: Media, header: str, start: int, end: int):
    link = media.link(await store_original(media), content_type="audio/wav")
    response = await media.get(link, range=header)
    assert response.status_code == 206
    assert response.content == DATA[start : end + 1]
    assert response.headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.headers["content-type"] == "audio/wav"


@pytest.mark.parametrize(
    "header",
    ["bytes=10000-", "bytes=20000-30000", "bytes=5-4", "bytes=-0", "bytes=x-y", "pages=1-2"],
)
async def test_unsatisfiable_ranges(media: Media, header: str):
    link = media.link(await store_original(media))
    response = await media.get(link, range=header)
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"
    assert response.headers["access-control-allow-origin"] == "*"


async def test_ranges_of_an_empty_file(media: Media):
    link = media.link(await store_original(media, b""))
    assert (await media.get(link, range="bytes=0-")).status_code == 416
    whole = await media.get(link)
    assert (whole.status_code, whole.content, whole.headers["content-length"]) == (200, b"", "0")


async def test_several_ranges_get_the_whole_file(media: Media):
    link = media.link(await store_original(media))
    response = await media.get(link, range="bytes=0-9,20-29")
    assert (response.status_code, response.content) == (200, DATA)


async def test_head_says_everything_but_the_body(media: Media):
    link = media.link(await store_original(media), content_type="audio/flac")
    get, head = await media.get(link), await media.client.head(link)
    assert head.status_code == 200 and head.content == b""
    for name in ("content-length", "content-type", "etag", "accept-ranges", "cache-control"):
        assert head.headers[name] == get.headers[name]
    ranged = await media.client.head(link, headers={"range": "bytes=-100"})
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes 9900-9999/{len(DATA)}"
    assert ranged.headers["content-length"] == "100"


async def test_if_none_match_and_if_range(media: Media):
    link = media.link(await store_original(media))
    tag = (await media.get(link)).headers["etag"]
    assert (await media.get(link, if_none_match=tag)).status_code == 304
    assert (await media.get(link, if_none_match=f'W/{tag}, "other"')).status_code == 304
    assert (await media.get(link, if_none_match='"other"')).status_code == 200
    same = await media.get(link, range="bytes=0-9", if_range=tag)
    assert (same.status_code, same.content) == (206, DATA[:10])
    changed = await media.get(link, range="bytes=0-9", if_range='"older"')
    assert (changed.status_code, changed.content) == (200, DATA)


async def test_content_types_by_suffix_and_never_active(media: Media):
    await media.storage.put_bytes(b"ID3...", key="renditions/7/mp3/take.mp3")
    await media.storage.put_bytes(b"{}", key="renditions/7/peaks/peaks.json")
    key = await store_original(media, b"<script>alert(1)</script>")
    cases = [
        (media.link("renditions/7/mp3/take.mp3"), "audio/mpeg"),
        (media.link("renditions/7/peaks/peaks.json"), "application/json"),
        (media.link(key), "application/octet-stream"),
        (media.link(key, content_type="text/html"), "application/octet-stream"),
        (media.link(key, content_type="image/svg+xml"), "application/octet-stream"),
    ]
    for link, expected in cases:
        response = await media.get(link)
        assert response.status_code == 200
        assert response.headers["content-type"] == expected
        assert "sandbox" in response.headers["content-security-policy"]
    assert "etag" not in (await media.get(cases[0][0])).headers  # renditions are replaced


async def test_an_unnamed_type_comes_from_the_signed_file_name(media: Media):
    await media.storage.put_bytes(b"RIFF....WAVE", key="renditions/9/original/file")
    plain = await media.get(media.link("renditions/9/original/file"))
    assert plain.headers["content-type"] == "application/octet-stream"
    named = await media.get(media.link("renditions/9/original/file", filename="take2.WAV"))
    assert named.headers["content-type"] == "audio/wav"
    stated = await media.get(
        media.link("renditions/9/original/file", filename="take2.wav", content_type="audio/x-wav")
    )
    assert stated.headers["content-type"] == "audio/x-wav"


class OriginalsReader:
    """Reads like a storage, and also serves ``originals/<id>`` from elsewhere (as the
    app's reader of scanned takes does)."""

    def __init__(self, storage: Storage, originals: dict[str, bytes]) -> None:
        self.storage, self.originals = storage, originals

    async def size(self, key: str) -> int:
        if key in self.originals:
            return len(self.originals[key])
        return await self.storage.size(key)

    async def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        if key in self.originals:
            yield self.originals[key][start : None if end is None else end + 1]
            return
        async for chunk in self.storage.open_range(key, start, end):
            yield chunk

    async def read_bytes(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.open_range(key)])


async def test_the_router_reads_from_what_it_is_given(storage: Storage):
    signer = MediaSigner(SECRET)
    app = FastAPI()
    app.state.reader = OriginalsReader(storage, {"originals/5": DATA})
    app.include_router(
        create_media_router(signer=signer, reader=lambda request: request.app.state.reader)
    )
    stored = await storage.put_bytes(b"stored")
    async with serve(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as client:
        link = signer.sign_url(key="originals/5", expires_at=in_minutes(5), filename="a.flac")
        ranged = await client.get(link, headers={"range": "bytes=10-19"})
        assert (ranged.status_code, ranged.content) == (206, DATA[10:20])
        assert ranged.headers["content-type"] == "audio/flac"
        other = await client.get(signer.sign_url(key=stored.key, expires_at=in_minutes(5)))
        assert other.content == b"stored"


@pytest.mark.parametrize(
    "change",
    ["key", "exp", "sig", "expired", "no query", "no sig", "no exp", "other key's sig", "ct"],
)
async def test_refused_links_are_403_before_storage(media: Media, change: str):
    key = await store_original(media)
    other = await store_original(media, b"another take")
    link = media.link(key)
    params = dict(query_of(link))
    path = urlsplit(link).path
    match change:
        case "key":
            url = f"/media/{other}?exp={params['exp']}&sig={params['sig']}"
        case "exp":
            url = f"{path}?exp={int(params['exp']) + 60}&sig={params['sig']}"
        case "sig":
            url = f"{path}?exp={params['exp']}&sig={params['sig'][::-1]}"
        case "expired":
            url = media.link(key, minutes=-1)
        case "no query":
            url = path
        case "no sig":
            url = f"{path}?exp={params['exp']}"
        case "no exp":
            url = f"{path}?sig={params['sig']}"
        case "other key's sig":
            other_params = dict(query_of(media.link(other)))
            url = f"{path}?exp={other_params['exp']}&sig={other_params['sig']}"
        case "ct":
            url = f"{link}&ct=text/html"
    storage_calls: list[str] = []
    size = media.storage.size

    async def counting_size(key: str) -> int:
        storage_calls.append(key)
        return await size(key)

    media.storage.size = counting_size  # type: ignore[method-assign]
    response = await media.get(url)
    assert response.status_code == 403
    expected = "This link has expired.\n" if change == "expired" else "This link is not valid.\n"
    assert response.text == expected
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["access-control-allow-origin"] == "*"
    assert storage_calls == []


async def test_a_signed_key_that_is_not_stored_is_404(media: Media):
    response = await media.get(media.link(content_key("0" * 64)))
    assert (response.status_code, response.text) == (404, "Not found.\n")
    assert (await media.get(media.link("renditions/1/mp3/none.mp3"))).status_code == 404


async def test_nothing_outside_the_storage_is_served(media: Media, tmp_path: Path):
    (tmp_path / "outside.txt").write_text("secret")
    await store_hls(media)
    params = dict(query_of(media.link(HLS + "index.m3u8")))
    query = f"?exp={params['exp']}&sig={params['sig']}"
    # Forged: what a signature for a key leading out would be, had sign_url allowed it.
    forged = Grant(key="../outside.txt", expires_at=int(in_minutes(5).timestamp()))
    forged_query = "?" + media.signer.query(forged)
    for target in [
        f"/media/{HLS}../../../../outside.txt{query}",
        f"/media/{HLS}..%2F..%2F..%2F..%2Foutside.txt{query}",
        f"/media/%2E%2E/%2E%2E/outside.txt{query}",
        f"/media//etc/passwd{query}",
        f"/media/../outside.txt{forged_query}",
        f"/media/..%2Foutside.txt{forged_query}",
    ]:
        status, body = await media.raw(target)
        # Answered by the media route itself (not a routing miss), and never the file.
        assert (status, body) in {(403, b"This link is not valid.\n"), (404, b"Not found.\n")}
        assert b"secret" not in body and b"root:" not in body


async def test_an_hls_playlist_comes_with_signed_segments(media: Media):
    files = await store_hls(media)
    playlist_link = media.link(HLS + "index.m3u8")
    response = await media.get(playlist_link)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert response.headers["content-length"] == str(len(response.content))
    text = response.text
    uris = re.findall(r'URI="([^"]+)"', text) + [
        line for line in text.splitlines() if line and not line.startswith("#")
    ]
    assert len(uris) == 4
    playlist_exp = dict(query_of(playlist_link))["exp"]
    base = response.url
    for uri in uris:
        name, _, query = uri.partition("?")
        assert dict(parse_qsl(query))["exp"] == playlist_exp
        # As a player does it: relative to the playlist's URL, nothing else added.
        segment = await media.client.get(base.join(uri))
        assert segment.status_code == 200, uri
        assert segment.content == files[name]
        assert segment.headers["content-type"] == "audio/mp4"
        assert segment.headers["access-control-allow-origin"] == "*"
        unsigned = await media.client.get(base.join(name))
        assert unsigned.status_code == 403
    # One segment's signature opens no other.
    first_query = uris[1].partition("?")[2]
    assert (await media.client.get(base.join("seg_002.m4s?" + first_query))).status_code == 403
    # The rest of the playlist is as stored.
    assert re.sub(r"\?[^\"\n]*", "", text) == PLAYLIST


async def test_a_master_playlists_variants_are_signed_all_the_way_down(media: Media):
    await media.storage.put_bytes(
        b'#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=160000,CODECS="opus"\nv0/index.m3u8\n',
        key=HLS + "master.m3u8",
    )
    for name, data in (("index.m3u8", PLAYLIST.encode()), ("seg_000.m4s", b"zero")):
        await media.storage.put_bytes(data, key=HLS + "v0/" + name)
    master = await media.get(media.link(HLS + "master.m3u8"))
    variant_uri = master.text.splitlines()[-1]
    assert variant_uri.startswith("v0/index.m3u8?exp=")
    variant = await media.client.get(master.url.join(variant_uri))
    assert variant.status_code == 200
    first = next(line for line in variant.text.splitlines() if line.startswith("seg_000"))
    segment = await media.client.get(variant.url.join(first))
    assert (segment.status_code, segment.content) == (200, b"zero")
    assert str(segment.url).startswith(f"http://{media.host}/media/{HLS}v0/seg_000.m4s?")


async def ffmpeg(*arguments: str) -> bytes:
    """Runs ffmpeg without blocking the loop the server runs on; its stdout."""
    process = await asyncio.create_subprocess_exec(
        find_ffmpeg(),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out


async def test_a_real_hls_client_plays_the_signed_playlist(media: Media, tmp_path: Path):
    """ffmpeg as the player: it is given the playlist's link and nothing else, and
    fetches the init segment and every media segment through the rewritten URIs."""
    folder = tmp_path / "hls"
    folder.mkdir()
    await ffmpeg(
        *("-f", "lavfi", "-i", "sine=f=440:d=13", "-c:a", "libopus", "-b:a", "64k"),
        *("-f", "hls", "-hls_time", "4", "-hls_segment_type", "fmp4"),
        *("-hls_playlist_type", "vod", "-hls_fmp4_init_filename", "init.mp4"),
        *("-hls_segment_filename", str(folder / "seg_%03d.m4s"), str(folder / "index.m3u8")),
    )
    await media.storage.put_directory(folder, prefix="renditions/77/hls/")
    link = f"http://{media.host}" + media.link("renditions/77/hls/index.m3u8")
    pcm = await ffmpeg("-i", link, "-f", "s16le", "-ac", "1", "-ar", "8000", "pipe:1")
    seconds = len(pcm) / 2 / 8000
    assert 12.5 < seconds < 13.5, seconds


async def test_a_real_client_seeks_in_an_original_by_range(media: Media, tmp_path: Path):
    """ffmpeg as the player of a WAV original (a content-addressed key, no suffix, its
    type signed): seeking to 0:55 of 1:00 reads from near the end, by Range."""
    wav = tmp_path / "take.wav"
    await ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=60", "-ac", "1", "-ar", "44100", str(wav))
    stored = await media.storage.put_file(wav)
    link = f"http://{media.host}" + media.link(stored.key, content_type="audio/wav")
    starts: list[int] = []
    open_range = media.storage.open_range

    def recording(key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        starts.append(start)
        return open_range(key, start, end)

    media.storage.open_range = recording  # type: ignore[method-assign]
    pcm = await ffmpeg("-ss", "55", "-i", link, "-f", "s16le", "-ac", "1", "-ar", "8000", "pipe:1")
    seconds = len(pcm) / 2 / 8000
    assert 4.5 < seconds < 5.5, seconds
    assert max(starts) > stored.size * 0.9, starts


async def test_a_playlist_by_head_and_range(media: Media):
    await store_hls(media)
    link = media.link(HLS + "index.m3u8")
    whole = await media.get(link)
    head = await media.client.head(link)
    assert (head.status_code, head.headers["content-length"]) == (200, str(len(whole.content)))
    part = await media.get(link, range="bytes=0-6")
    assert (part.status_code, part.content) == (206, b"#EXTM3U")
    assert part.headers["content-range"] == f"bytes 0-6/{len(whole.content)}"


async def test_cors_preflight_for_range(media: Media):
    response = await media.client.options(
        "/media/anything",
        headers={
            "origin": "https://player.example.org",
            "access-control-request-method": "GET",
            "access-control-request-headers": "range",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "Range" in response.headers["access-control-allow-headers"]
    assert "GET" in response.headers["access-control-allow-methods"]


async def test_the_router_signs_with_the_apps_secret(storage: Storage, tmp_path: Path):
    """What app.py wires up: links signed with the settings' secret key verify."""
    settings = Settings(data_dir=tmp_path / "data", secret_key="the-apps-secret-key")
    app = FastAPI()
    app.include_router(create_media_router(settings))
    app.state.storage = storage
    key = (await storage.put_bytes(b"take")).key
    link = sign_url(
        key=key, secret=settings.resolved_secret_key, expires_at=stream_expiry(settings)
    )
    async with serve(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as client:
        assert (await client.get(link)).content == b"take"
        other = sign_url(key=key, secret="another-secret", expires_at=stream_expiry(settings))
        assert (await client.get(other)).status_code == 403


async def test_a_client_that_leaves_early_frees_the_server(media: Media):
    key = (await media.storage.put_bytes(random.Random(5).randbytes(4 * MIB))).key
    link = media.link(key)
    for _ in range(3):
        async with media.client.stream("GET", link) as response:
            assert response.status_code == 200
            async for _chunk in response.aiter_raw():
                break  # and close the connection mid-body
    assert (await media.get(link, range="bytes=0-3")).status_code == 206
    if isinstance(media.storage, LocalStorage):
        # Each abandoned response closed its file (no descriptor is left open on it).
        path = str(media.storage.root / key)

        def open_on_it() -> int:
            found = 0
            for fd in Path("/proc/self/fd").iterdir():
                with contextlib.suppress(OSError):
                    found += os.readlink(fd) == path
            return found

        await eventually(lambda: open_on_it() == 0)


class Generated:
    """``total`` pseudo-random bytes made chunk by chunk, never all at once."""

    def __init__(self, total: int, *, seed: int = 11) -> None:
        self.total, self.random, self.hash = total, random.Random(seed), hashlib.sha256()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.total:
            data = self.random.randbytes(min(256 * 1024, self.total - sent))
            sent += len(data)
            self.hash.update(data)
            yield data


async def test_a_50_mb_file_streams_in_flat_memory(media: Media):
    source = Generated(50 * 1000 * 1000)
    stored = await media.storage.put_stream(aiter(source), max_bytes=None)
    link = media.link(stored.key)
    received = hashlib.sha256()
    count = 0
    tracemalloc.start()
    try:
        async with media.client.stream("GET", link, headers={"range": "bytes=1000-"}) as response:
            assert response.status_code == 206
            async for chunk in response.aiter_raw():
                received.update(chunk)
                count += len(chunk)
                if count == len(chunk):
                    # A player that pauses: the server waits for it instead of reading
                    # the rest of the file into its send buffer.
                    await asyncio.sleep(1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50 * 1000 * 1000 - 1000
    whole = hashlib.sha256()
    async for chunk in media.storage.open_range(stored.key, 1000):
        whole.update(chunk)
    assert received.hexdigest() == whole.hexdigest()
    # Server and client in this process: a few chunks in flight (measured: ~1.5 MiB
    # local, ~2 MiB S3), far below 50 MB.
    bound = 8 * MIB
    assert peak < bound, f"peak {peak / MIB:.1f} MiB while serving 50 MB"
