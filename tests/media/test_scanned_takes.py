"""Scanned takes, from a local folder and from a WebDAV share (wsgidav on loopback): the
scan queues their media work, they become READY, and their originals are served from
the source itself through signed links, byte ranges included."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.graphql_client import gql, register
from tests.media_fixtures import clicks, stereo, write_wav
from tests.webdav_server import DEFAULT_PASSWORD, DEFAULT_USER, running_webdav_server

ADD = """mutation($b: ID!, $kind: SourceKind!, $root: String!, $user: String, $pw: String) {
  addSource(input: {bandId: $b, kind: $kind, name: "x", root: $root, username: $user,
                    password: $pw}) { id } }"""
SCAN = "mutation($s: ID!) { scanSource(sourceId: $s) { id } }"
TAKES = """query($b: ID!) { band(id: $b) { tracks { nodes { title bpm versions { nodes {
  id path status failureReason durationMs analysis { bpm }
  streams { original mp3 hls } } } } } } }"""


@pytest.fixture
async def band(client) -> tuple[str, str]:
    token, _ = await register(client, "scanned")
    created = await gql(
        client, 'mutation { createBand(input: {name: "Scanned"}) { id } }', token=token
    )
    return token, created.ok()["createBand"]["id"]


def rehearsal(folder: Path) -> bytes:
    path = folder / "231015" / "groove" / "take1.wav"
    path.parent.mkdir(parents=True)
    write_wav(path, stereo(clicks(120, 10)), 44100)
    return path.read_bytes()


async def scan_until_ready(client, token, band_id, source_id) -> dict:
    job = (await gql(client, SCAN, {"s": source_id}, token=token)).ok()["scanSource"]
    async with asyncio.timeout(90):
        while True:
            state = await gql(
                client, "query($j: ID!) { job(id: $j) { status } }", {"j": job["id"]}, token=token
            )
            if state.ok()["job"]["status"] == "SUCCEEDED":
                break
            await asyncio.sleep(0.05)
        while True:
            band = (await gql(client, TAKES, {"b": band_id}, token=token)).ok()["band"]
            takes = [v for t in band["tracks"]["nodes"] for v in t["versions"]["nodes"]]
            if takes and all(take["status"] in {"READY", "FAILED"} for take in takes):
                return band
            await asyncio.sleep(0.1)


async def fetch(client: httpx.AsyncClient, url: str, **headers: str) -> httpx.Response:
    parts = urlsplit(url)
    return await client.get(f"{parts.path}?{parts.query}", headers=headers)


async def check_processed_and_served(client, band: dict, data: bytes) -> None:
    track = band["tracks"]["nodes"][0]
    take = track["versions"]["nodes"][0]
    assert take["status"] == "READY", take["failureReason"]
    assert take["path"] == "231015/groove/take1.wav"
    assert abs(take["analysis"]["bpm"] - 120) <= 1 and track["bpm"] == pytest.approx(120, abs=1)
    whole = await fetch(client, take["streams"]["original"])
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "audio/wav"
    part = await fetch(client, take["streams"]["original"], Range="bytes=100-199")
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    past = await fetch(client, take["streams"]["original"], Range=f"bytes={len(data)}-")
    assert past.status_code == 416
    assert (await fetch(client, take["streams"]["mp3"])).status_code == 200


async def test_a_scanned_folder_is_processed_and_its_originals_served_in_place(
    client, band, tmp_path_factory
):
    token, band_id = band
    folder = tmp_path_factory.mktemp("folder")
    data = rehearsal(folder)
    variables = {"b": band_id, "kind": "LOCAL_FOLDER", "root": str(folder)}
    source_id = (await gql(client, ADD, variables, token=token)).ok()["addSource"]["id"]
    found = await scan_until_ready(client, token, band_id, source_id)
    await check_processed_and_served(client, found, data)
    # The file is removed: its take goes MISSING and its link stops serving.
    link = found["tracks"]["nodes"][0]["versions"]["nodes"][0]["streams"]["original"]
    (folder / "231015" / "groove" / "take1.wav").unlink()
    assert (await fetch(client, link)).status_code == 404


async def test_a_scanned_share_is_processed_and_its_originals_served_from_it(
    client, band, tmp_path_factory
):
    token, band_id = band
    folder = tmp_path_factory.mktemp("share")
    data = rehearsal(folder)
    with running_webdav_server(folder) as url:
        variables = {
            "b": band_id,
            "kind": "WEBDAV",
            "root": url,
            "user": DEFAULT_USER,
            "pw": DEFAULT_PASSWORD,
        }
        source_id = (await gql(client, ADD, variables, token=token)).ok()["addSource"]["id"]
        found = await scan_until_ready(client, token, band_id, source_id)
        await check_processed_and_served(client, found, data)


JOBS = """query($b: ID!) { band(id: $b) { jobs(first: 50) { nodes { kind status } } } }"""


async def probes(client, token, band_id) -> int:
    jobs = (await gql(client, JOBS, {"b": band_id}, token=token)).ok()["band"]["jobs"]["nodes"]
    return sum(job["kind"] == "PROBE" for job in jobs)


async def test_a_moved_take_keeps_its_media_and_a_changed_one_is_processed_again(
    client, band, tmp_path_factory
):
    token, band_id = band
    folder = tmp_path_factory.mktemp("moves")
    rehearsal(folder)
    variables = {"b": band_id, "kind": "LOCAL_FOLDER", "root": str(folder)}
    source_id = (await gql(client, ADD, variables, token=token)).ok()["addSource"]["id"]
    await scan_until_ready(client, token, band_id, source_id)
    assert await probes(client, token, band_id) == 1

    # Renamed: the same take, still READY, nothing processed again.
    (folder / "231015" / "groove" / "take1.wav").rename(folder / "231015" / "groove" / "t1.wav")
    found = await scan_until_ready(client, token, band_id, source_id)
    take = found["tracks"]["nodes"][0]["versions"]["nodes"][0]
    assert (take["path"], take["status"]) == ("231015/groove/t1.wav", "READY")
    assert await probes(client, token, band_id) == 1

    # Re-recorded in place at another tempo: processed again, the analysis follows.
    write_wav(folder / "231015" / "groove" / "t1.wav", stereo(clicks(145, 10)), 44100)
    found = await scan_until_ready(client, token, band_id, source_id)
    take = found["tracks"]["nodes"][0]["versions"]["nodes"][0]
    assert take["status"] == "READY" and abs(take["analysis"]["bpm"] - 145) <= 1
    assert await probes(client, token, band_id) == 2
