"""Storage behaviour, the same on both backends (``storage`` runs each test on a local folder
and on S3 through moto over real HTTP), plus what only S3 offers: browser multipart uploads
through presigned URLs."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import random
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backend.core.errors import BadUserInput, NotFound
from backend.core.settings import Settings
from backend.media.storage import (
    InvalidKey,
    LocalStorage,
    NotSupported,
    RangeNotSatisfiable,
    Storage,
    StorageUnavailable,
    TooLarge,
    content_key,
    create_storage,
    rendition_prefix,
)
from backend.media.storage.base import MIB, MIN_PART_SIZE
from backend.media.storage.keys import upload_key
from backend.media.storage.s3 import S3Storage
from backend.media.storage.s3_client import S3Endpoint
from tests.media.conftest import pending_uploads, s3_session


def random_bytes(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


async def chunked(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


class Generated:
    """``total`` pseudo-random bytes made chunk by chunk, never all at once; counts what
    was taken and hashes it, to compare with what the storage says."""

    def __init__(self, total: int, *, chunk: int = 64 * 1024, seed: int = 7) -> None:
        self.total, self.chunk = total, chunk
        self.random = random.Random(seed)
        self.sent = 0
        self.hash = hashlib.sha256()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            data = self.random.randbytes(min(self.chunk, self.total - self.sent))
            self.sent += len(data)
            self.hash.update(data)
            yield data


async def all_keys(storage: Storage) -> list[str]:
    return sorted([key async for key in storage.list_keys()])


# -- content addressing -------------------------------------------------------------


async def test_the_same_bytes_are_stored_once(storage: Storage):
    small = random_bytes(300_000)
    first = await storage.put_stream(chunked(small, 1000), max_bytes=None)
    again = await storage.put_stream(chunked(small, 65_536), max_bytes=None)
    as_bytes = await storage.put_bytes(small)

    digest = hashlib.sha256(small).hexdigest()
    assert first.sha256 == digest and first.size == len(small)
    assert first == again == as_bytes
    assert first.key == content_key(digest) == f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"

    # Larger than a part: on S3 it goes through a temporary multipart object and a copy.
    large = random_bytes(2 * MIN_PART_SIZE + 12_345, seed=2)
    big = await storage.put_stream(chunked(large), max_bytes=None)
    big_again = await storage.put_stream(chunked(large, 3 * MIB), max_bytes=None)
    assert big == big_again
    assert big.sha256 == hashlib.sha256(large).hexdigest()

    # Nothing else is kept: no temporary objects, no second copies.
    assert await all_keys(storage) == sorted([first.key, big.key])
    assert await storage.read_bytes(first.key) == small
    assert await storage.read_bytes(big.key) == large


async def test_an_empty_stream_is_a_file_too(storage: Storage):
    stored = await storage.put_stream(chunked(b""), max_bytes=10)
    assert stored.size == 0
    assert stored.sha256 == hashlib.sha256(b"").hexdigest()
    assert await storage.size(stored.key) == 0
    assert await storage.read_bytes(stored.key) == b""


async def test_a_50_mb_stream_is_never_held_in_memory(storage: Storage):
    stream = Generated(50 * 1000 * 1000)
    # Not counted: the S3 client's one-time setup (it loads the S3 API model, ~10 MiB).
    await storage.exists("renditions/warm-up")
    gc.collect()
    tracemalloc.start()
    try:
        stored = await storage.put_stream(aiter(stream), max_bytes=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert stored.size == stream.total
    assert stored.sha256 == stream.hash.hexdigest()
    assert await storage.size(stored.key) == stream.total
    # What is held at once: a 1 MiB write buffer (local) or one 5 MiB part plus its joined
    # copy (S3), and the client's request machinery; never the file. Measured: ~2.3 MiB
    # local, ~11 MiB S3; the bounds leave room but stay far below 50 MB.
    bound = 4 * MIB if isinstance(storage, LocalStorage) else 3 * MIN_PART_SIZE + 4 * MIB
    assert peak < bound, f"peak {peak / MIB:.1f} MiB while storing 50 MB"


# -- size limit -----------------------------------------------------------------------


@pytest.mark.parametrize("total", [5_000, 3 * MIN_PART_SIZE])
async def test_too_large_is_refused_and_leaves_nothing(storage: Storage, total: int):
    limit = total // 2
    stream = Generated(total)
    with pytest.raises(TooLarge) as raised:
        await storage.put_stream(aiter(stream), max_bytes=limit)

    error = raised.value
    assert isinstance(error, BadUserInput)
    assert error.extensions["code"] == "BAD_USER_INPUT"
    assert error.extensions["field"] == "file"
    assert error.extensions["reason"] == "TOO_LARGE"
    assert "too large" in error.message and "at most" in error.message
    # It stops reading once the limit is passed: the rest is never asked for.
    assert stream.sent <= limit + stream.chunk
    assert await all_keys(storage) == []
    if isinstance(storage, S3Storage):
        assert await pending_uploads(storage.endpoint) == []


async def test_the_limit_itself_is_allowed(storage: Storage):
    stored = await storage.put_stream(chunked(b"x" * 1000, 300), max_bytes=1000)
    assert stored.size == 1000


def test_too_large_message_names_the_limit():
    assert TooLarge(max_bytes=2 * 1024**3).message == (
        "The file is too large: at most 2 GiB can be uploaded."
    )
    assert "1.5 MiB" in TooLarge(max_bytes=3 * MIB // 2).message


# -- reading --------------------------------------------------------------------------


async def test_byte_ranges(storage: Storage):
    data = random_bytes(700_000, seed=3)  # several read chunks
    key = (await storage.put_bytes(data)).key
    size = len(data)

    async def read(start: int, end: int | None) -> bytes:
        return b"".join([chunk async for chunk in storage.open_range(key, start, end)])

    assert await read(0, None) == data
    assert await read(0, 0) == data[:1]
    assert await read(10, 19) == data[10:20]
    assert await read(300_000, 600_000) == data[300_000:600_001]
    assert await read(size - 1, None) == data[-1:]  # the last byte
    assert await read(size - 1, size - 1) == data[-1:]
    assert await read(size - 10, size + 1000) == data[-10:]  # clipped at the end
    assert await read(123, None) == data[123:]

    for start, end in [(size, None), (size + 5, size + 10), (5, 4), (-1, None)]:
        with pytest.raises(RangeNotSatisfiable):
            await read(start, end)
    assert await storage.size(key) == size


async def test_missing_objects(storage: Storage):
    missing = content_key("0" * 64)
    assert not await storage.exists(missing)
    with pytest.raises(NotFound):
        await storage.size(missing)
    with pytest.raises(NotFound):
        await storage.read_bytes(missing)
    with pytest.raises(NotFound):
        async with storage.local_path(missing):
            pass
    await storage.delete(missing)  # nothing to do, no error


async def test_local_path_gives_a_file_for_tools(storage: Storage):
    data = random_bytes(3 * MIB + 17, seed=4)
    key = (await storage.put_bytes(data)).key
    async with storage.local_path(key) as path:
        assert path.is_file()
        assert path.read_bytes() == data
    if isinstance(storage, LocalStorage):
        assert path.is_file() and path.is_relative_to(storage.root)  # its own file
    else:
        assert not path.exists()  # the downloaded copy is gone
        assert not any(path.parent.parent.iterdir())


# -- derived files --------------------------------------------------------------------


async def test_renditions_live_under_a_prefix(storage: Storage, tmp_path: Path):
    output = tmp_path / "hls"
    (output / "segments").mkdir(parents=True)
    (output / "index.m3u8").write_text("#EXTM3U\nsegments/seg1.m4s\n")
    (output / "init.mp4").write_bytes(b"init")
    (output / "segments" / "seg1.m4s").write_bytes(random_bytes(1000))
    prefix = rendition_prefix(version_id=7, format="hls")
    assert prefix == "renditions/7/hls/"

    stored = await storage.put_directory(
        output, prefix=prefix, content_types={".m3u8": "application/vnd.apple.mpegurl"}
    )
    assert [item.key for item in stored] == [
        "renditions/7/hls/index.m3u8",
        "renditions/7/hls/init.mp4",
        "renditions/7/hls/segments/seg1.m4s",
    ]
    # A re-transcode replaces a file in place.
    await storage.put_bytes(b"#EXTM3U\n", key="renditions/7/hls/index.m3u8")
    assert await storage.read_bytes("renditions/7/hls/index.m3u8") == b"#EXTM3U\n"

    other = await storage.put_bytes(b"mp3", key="renditions/70/mp3/take.mp3")
    peaks = await storage.put_bytes(b'{"version": 2}')  # a waveform: content-addressed

    await storage.delete_prefix("renditions/7")  # not renditions/70
    assert await all_keys(storage) == sorted([other.key, peaks.key])

    await storage.delete(peaks.key)
    assert not await storage.exists(peaks.key)
    assert await storage.exists(other.key)


async def test_put_file_content_addressed(storage: Storage, tmp_path: Path):
    path = tmp_path / "take.mp3"
    path.write_bytes(random_bytes(MIN_PART_SIZE + 1, seed=5))
    stored = await storage.put_file(path)
    assert stored.key == content_key(hashlib.sha256(path.read_bytes()).hexdigest())
    assert path.exists()  # the caller's file is left alone


# -- keys never escape ----------------------------------------------------------------

BAD_KEYS = [
    "../outside",
    "a/../../outside",
    "/etc/passwd",
    "a//b",
    "",
    ".",
    "..",
    "a/./b",
    "a/b/",
    "..\\outside",
    "a\\..\\b",
    "a/\x00b",
    "x" * 501,
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_keys_never_leave_the_storage(storage: Storage, key: str):
    with pytest.raises(InvalidKey) as raised:
        await storage.exists(key)
    assert raised.value.extensions["field"] == "key"
    with pytest.raises(InvalidKey):
        await storage.size(key)
    with pytest.raises(InvalidKey):
        await storage.read_bytes(key)
    with pytest.raises(InvalidKey):
        await storage.delete(key)
    with pytest.raises(InvalidKey):
        await storage.put_bytes(b"x", key=key)
    with pytest.raises(InvalidKey):
        async with storage.local_path(key):
            pass
    assert await all_keys(storage) == []


@pytest.mark.parametrize("prefix", ["", "/", "..", "../", "/etc", "a/../.."])
async def test_prefixes_never_leave_the_storage(storage: Storage, prefix: str):
    await storage.put_bytes(b"keep", key="renditions/1/hls/index.m3u8")
    with pytest.raises(InvalidKey):
        await storage.delete_prefix(prefix)
    assert await all_keys(storage) == ["renditions/1/hls/index.m3u8"]


@pytest.mark.parametrize("key", ["sha256/ab/cd/forged", "tmp/x", "uploads/x/y.wav"])
async def test_only_the_storage_writes_its_own_areas(storage: Storage, key: str):
    with pytest.raises(InvalidKey):
        await storage.put_bytes(b"forged", key=key)


async def test_a_symlink_inside_the_folder_cannot_lead_out(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    storage = LocalStorage(tmp_path / "storage")
    (storage.root / "renditions").symlink_to(outside)
    with pytest.raises(InvalidKey):
        await storage.read_bytes("renditions/secret")
    with pytest.raises(InvalidKey):
        await storage.delete_prefix("renditions")
    assert (outside / "secret").exists()


def test_upload_keys_are_fresh_and_tidy():
    first, second = upload_key("../../etc/passwd"), upload_key("../../etc/passwd")
    assert first != second
    assert first.startswith("uploads/") and first.endswith("/passwd")
    assert upload_key("Probe 15.10. (Groove)!.wav").endswith("/Probe_15.10._Groove_.wav")
    assert upload_key("..").endswith("/upload")


# -- settings -------------------------------------------------------------------------


async def test_create_storage_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    local = create_storage(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalStorage)
    assert local.root == (tmp_path / "storage").resolve()
    assert Settings().max_upload_bytes == 2 * 1024**3

    with pytest.raises(ValueError, match="BACKLINE_S3_BUCKET"):
        create_storage(Settings(data_dir=tmp_path, storage_backend="s3"))

    for name, value in {
        "STORAGE_BACKEND": "s3",
        "S3_ENDPOINT_URL": "http://minio:9000",
        "S3_PUBLIC_ENDPOINT_URL": "https://media.example.org",
        "S3_BUCKET": "backline",
        "S3_ACCESS_KEY": "key",
        "S3_SECRET_KEY": "secret",
        "MAX_UPLOAD_BYTES": "1000",
    }.items():
        monkeypatch.setenv(f"BACKLINE_{name}", value)
    settings = Settings(data_dir=tmp_path)
    assert settings.max_upload_bytes == 1000
    async with create_storage(settings) as s3:
        assert isinstance(s3, S3Storage)
        assert s3.endpoint == S3Endpoint(
            bucket="backline",
            endpoint_url="http://minio:9000",
            region="us-east-1",
            access_key="key",
            secret_key="secret",
        )
        # Browsers get URLs on the public endpoint; signing needs no connection.
        url = await s3.presign_part("uploads/abc/take.wav", "upload-1", 1)
        assert url.startswith("https://media.example.org/backline/uploads/abc/take.wav?")
        assert "partNumber=1" in url and "uploadId=upload-1" in url


async def test_an_unreachable_s3_is_service_unavailable(tmp_path: Path):
    endpoint = S3Endpoint(
        bucket="backline",
        endpoint_url="http://127.0.0.1:9",
        access_key="k",
        secret_key="s",
        max_attempts=1,
    )
    async with S3Storage(endpoint, scratch_dir=tmp_path, session=s3_session()) as storage:
        with pytest.raises(StorageUnavailable) as raised:
            await storage.exists("renditions/1/x")
    assert raised.value.extensions["code"] == "SERVICE_UNAVAILABLE"


async def test_a_missing_bucket_is_service_unavailable(s3_endpoint_url: str):
    endpoint = S3Endpoint(
        bucket="no-such-bucket", endpoint_url=s3_endpoint_url, access_key="k", secret_key="s"
    )
    async with S3Storage(endpoint, session=s3_session()) as storage:
        with pytest.raises(StorageUnavailable, match="no-such-bucket"):
            await storage.put_bytes(b"x")


async def test_local_storage_finalizes_an_upload_by_content(tmp_path: Path):
    # No local multipart API yet, but a finished upload is adopted the same way as on S3.
    storage = LocalStorage(tmp_path / "storage")
    data = random_bytes(1000, seed=12)
    dropped = storage.root / "uploads" / "abc" / "take.wav"
    dropped.parent.mkdir(parents=True)
    dropped.write_bytes(data)
    stored = await storage.finalize_upload("uploads/abc/take.wav")
    assert stored.key == content_key(hashlib.sha256(data).hexdigest())
    assert await all_keys(storage) == [stored.key]
    with pytest.raises(InvalidKey):
        await storage.finalize_upload(stored.key)


async def test_local_storage_has_no_multipart(tmp_path: Path):
    storage = LocalStorage(tmp_path)
    assert not storage.supports_multipart
    with pytest.raises(NotSupported) as raised:
        await storage.create_multipart("take.wav")
    assert raised.value.extensions == {"code": "BAD_USER_INPUT", "reason": "NOT_SUPPORTED"}
    assert "S3" in raised.value.message


# -- browser multipart uploads (S3) ---------------------------------------------------


def parts_of(data: bytes, size: int = MIN_PART_SIZE) -> list[bytes]:
    return [data[offset : offset + size] for offset in range(0, len(data), size)]


async def put_part(http: httpx.AsyncClient, url: str, body: bytes) -> None:
    response = await http.put(url, content=body)
    assert response.status_code == 200, response.text


async def broken_put(url: str, body: bytes) -> None:
    """A browser that goes away mid-part: headers and a fifth of the body, then the
    connection is closed."""
    parsed = httpx.URL(url)
    _reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
    target = parsed.raw_path.decode()
    head = f"PUT {target} HTTP/1.1\r\nHost: {parsed.netloc.decode()}\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body[: len(body) // 5])
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_a_browser_uploads_in_parts_and_resumes(s3_storage: S3Storage):
    data = random_bytes(2 * MIN_PART_SIZE + 123_456, seed=9)  # 5 MiB, 5 MiB, the rest
    first, second, last = parts_of(data)
    upload = await s3_storage.create_multipart("Probe 15.10.wav", content_type="audio/wav")
    assert upload.key.startswith("uploads/") and upload.key.endswith("/Probe_15.10.wav")

    async with httpx.AsyncClient(timeout=30) as http:
        await put_part(http, await s3_storage.presign_part(upload.key, upload.upload_id, 1), first)
        # The connection breaks during part 2.
        await broken_put(await s3_storage.presign_part(upload.key, upload.upload_id, 2), second)

        # Later, the page asks what arrived and sends the rest.
        arrived = await s3_storage.list_parts(upload.key, upload.upload_id)
        assert [(part.part_number, part.size) for part in arrived] == [(1, len(first))]
        for number, body in [(2, second), (3, last)]:
            url = await s3_storage.presign_part(upload.key, upload.upload_id, number)
            await put_part(http, url, body)

    parts = await s3_storage.list_parts(upload.key, upload.upload_id)
    assert [part.size for part in parts] == [len(first), len(second), len(last)]
    size = await s3_storage.complete_multipart(
        upload.key, upload.upload_id, parts, max_bytes=len(data)
    )
    assert size == len(data)
    assert await s3_storage.read_bytes(upload.key) == data
    assert await pending_uploads(s3_storage.endpoint) == []

    # A worker moves it to its content address.
    stored = await s3_storage.finalize_upload(upload.key)
    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.size == len(data)
    assert await all_keys(s3_storage) == [stored.key]
    assert await s3_storage.read_bytes(stored.key) == data


async def test_complete_uses_the_storages_own_part_list(s3_storage: S3Storage):
    data = random_bytes(MIN_PART_SIZE + 10, seed=10)
    upload = await s3_storage.create_multipart("take.wav")
    async with httpx.AsyncClient(timeout=30) as http:
        for number, body in enumerate(parts_of(data), start=1):
            await put_part(
                http, await s3_storage.presign_part(upload.key, upload.upload_id, number), body
            )
    # The browser could not read the ETag headers (CORS): it sends no parts list.
    assert await s3_storage.complete_multipart(upload.key, upload.upload_id, max_bytes=None) == (
        len(data)
    )
    assert await s3_storage.read_bytes(upload.key) == data


async def test_an_upload_over_the_limit_is_aborted_on_complete(s3_storage: S3Storage):
    data = random_bytes(MIN_PART_SIZE + 10, seed=11)
    upload = await s3_storage.create_multipart("huge.wav")
    async with httpx.AsyncClient(timeout=30) as http:
        for number, body in enumerate(parts_of(data), start=1):
            await put_part(
                http, await s3_storage.presign_part(upload.key, upload.upload_id, number), body
            )
    with pytest.raises(TooLarge):
        await s3_storage.complete_multipart(upload.key, upload.upload_id, max_bytes=MIN_PART_SIZE)
    assert await pending_uploads(s3_storage.endpoint) == []
    assert await all_keys(s3_storage) == []


async def test_abort_drops_the_parts(s3_storage: S3Storage):
    upload = await s3_storage.create_multipart("take.wav")
    async with httpx.AsyncClient(timeout=30) as http:
        url = await s3_storage.presign_part(upload.key, upload.upload_id, 1)
        await put_part(http, url, random_bytes(MIN_PART_SIZE))
    assert await pending_uploads(s3_storage.endpoint) == [upload.key]

    await s3_storage.abort_multipart(upload.key, upload.upload_id)
    assert await pending_uploads(s3_storage.endpoint) == []
    assert await all_keys(s3_storage) == []
    with pytest.raises(NotFound):
        await s3_storage.list_parts(upload.key, upload.upload_id)
    await s3_storage.abort_multipart(upload.key, upload.upload_id)  # again: no error


async def test_multipart_checks_what_the_browser_sends(s3_storage: S3Storage):
    upload = await s3_storage.create_multipart("take.wav")
    for key in ["sha256/ab/cd/" + "a" * 64, "renditions/1/hls/index.m3u8", "../uploads/x"]:
        with pytest.raises(InvalidKey):
            await s3_storage.presign_part(key, upload.upload_id, 1)
        with pytest.raises(InvalidKey):
            await s3_storage.complete_multipart(key, upload.upload_id, max_bytes=None)
    for number in [0, 10_001]:
        with pytest.raises(BadUserInput, match="Part numbers"):
            await s3_storage.presign_part(upload.key, upload.upload_id, number)
    with pytest.raises(InvalidKey):
        await s3_storage.finalize_upload("renditions/1/hls/index.m3u8")
    with pytest.raises(BadUserInput, match="No part"):
        await s3_storage.complete_multipart(upload.key, upload.upload_id, max_bytes=None)
    with pytest.raises(NotFound):
        await s3_storage.list_parts(upload.key, "no-such-upload")
