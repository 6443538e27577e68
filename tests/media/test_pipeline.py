"""A take's media work end to end, through the real app and its embedded workers: an
upload (GraphQL multipart request) is probed, analysed and transcoded into a READY
version with its analysis, waveform and signed streams; bad files fail with a reason."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from backend.jobs.models import Job
from backend.library.models import TrackVersion
from backend.media.models import Asset
from tests.graphql_client import gql, register
from tests.media_fixtures import clicks, encode, stereo, write_wav

UPLOAD = """mutation($band: ID!, $file: Upload!, $track: ID, $date: Date) {
  uploadVersion(bandId: $band, file: $file, trackId: $track, sessionDate: $date) {
    id status label originalFilename track { id title } session { date } } }"""
VERSION = """query($id: ID!) { node(id: $id) { ... on TrackVersion {
  status failureReason format codec durationMs sampleRate channels bitrate sizeBytes
  track { bpm key }
  analysis { bpm bpmConfidence key scale loudnessLufs loudnessRangeLu truePeakDbtp }
  waveform { sampleRate samplesPerPixel bits channels length url zoomLevels data }
  streams { original mp3 hls cover expiresAt } } } }"""
JOBS = """query($b: ID!) { band(id: $b) { jobs(first: 20) { nodes { kind status message } } } }"""


async def upload(
    client: httpx.AsyncClient,
    token: str,
    band_id: str,
    name: str,
    data: bytes,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    operations = {
        "query": UPLOAD,
        "variables": {"band": band_id, "file": None, **(variables or {})},
    }
    response = await client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": (name, data, "application/octet-stream")},
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.json()


async def wait_settled(client, token, version_id, seconds: float = 180.0) -> dict[str, Any]:
    async with asyncio.timeout(seconds):
        while True:
            version = (await gql(client, VERSION, {"id": version_id}, token=token)).ok()["node"]
            if version["status"] in {"READY", "FAILED"}:
                return version
            await asyncio.sleep(0.1)


def click_take(path: Path, *, bpm: float = 120, seconds: float = 12) -> bytes:
    write_wav(path, stereo(clicks(bpm, seconds)), 44100)
    return path.read_bytes()


async def fetch(client: httpx.AsyncClient, url: str, **headers: str) -> httpx.Response:
    parts = urlsplit(url)
    return await client.get(f"{parts.path}?{parts.query}", headers=headers)


async def test_an_upload_becomes_a_ready_take_with_analysis_waveform_and_streams(
    client, member, tmp_path
):
    token, band_id = member
    data = click_take(tmp_path / "groove.wav")
    body = await upload(client, token, band_id, "Groove.wav", data, {"date": "2023-10-15"})
    assert "errors" not in body, body
    added = body["data"]["uploadVersion"]
    assert added["status"] == "PENDING"
    assert added["track"]["title"] == "Groove"
    assert added["session"] == {"date": "2023-10-15"}

    version = await wait_settled(client, token, added["id"])
    assert version["status"] == "READY", version["failureReason"]
    assert (version["format"], version["codec"]) == ("wav", "pcm_s16le")
    assert abs(version["durationMs"] - 12_000) <= 20
    assert (version["sampleRate"], version["channels"]) == (44100, 2)
    assert version["sizeBytes"] == len(data)
    analysis = version["analysis"]
    assert abs(analysis["bpm"] - 120) <= 1
    assert analysis["loudnessLufs"] is not None
    # The first analysis fills the track's tempo.
    assert version["track"]["bpm"] == pytest.approx(120, abs=1)

    waveform = version["waveform"]
    assert waveform["bits"] == 8 and waveform["channels"] == 1
    assert waveform["zoomLevels"] == [256, 1024, 4096]
    assert len(waveform["data"]) == 2 * waveform["length"]
    assert waveform["length"] == -(-12 * 44100 // waveform["samplesPerPixel"])
    served = await fetch(client, waveform["url"])
    assert served.status_code == 200
    assert served.json()["data"] == waveform["data"]

    streams = version["streams"]
    original = await fetch(client, streams["original"], Range="bytes=0-11")
    assert original.status_code == 206
    assert original.content == data[:12]
    assert original.headers["content-range"] == f"bytes 0-11/{len(data)}"
    mp3 = await fetch(client, streams["mp3"])
    assert mp3.status_code == 200 and mp3.headers["content-type"] == "audio/mpeg"
    playlist = await fetch(client, streams["hls"])
    assert playlist.status_code == 200
    segments = [line for line in playlist.text.splitlines() if line and not line.startswith("#")]
    assert segments, playlist.text
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist.text)
    assert init, playlist.text
    for relative in [init.group(1), *segments]:
        # Relative to the playlist, as a player resolves them: signed each, no header.
        segment = await fetch(client, urljoin(streams["hls"], relative))
        assert segment.status_code == 200, relative
        assert segment.headers["content-type"] == "audio/mp4"

    jobs = (await gql(client, JOBS, {"b": band_id}, token=token)).ok()["band"]["jobs"]["nodes"]
    assert sorted((job["kind"], job["status"]) for job in jobs) == [
        ("ANALYZE", "SUCCEEDED"),
        ("PROBE", "SUCCEEDED"),
        ("TRANSCODE", "SUCCEEDED"),
    ]


async def test_a_tempo_set_by_a_person_is_kept(client, member, tmp_path):
    token, band_id = member
    track = await gql(
        client,
        'mutation($b: ID!) { createTrack(bandId: $b, title: "Slow one") { id } }',
        {"b": band_id},
        token=token,
    )
    track_id = track.ok()["createTrack"]["id"]
    await gql(
        client,
        "mutation($t: ID!) { updateTrack(id: $t, bpm: 64) { bpm } }",
        {"t": track_id},
        token=token,
    )
    data = click_take(tmp_path / "take.wav", bpm=97)
    body = await upload(client, token, band_id, "take.wav", data, {"track": track_id})
    added = body["data"]["uploadVersion"]
    assert added["track"]["id"] == track_id
    version = await wait_settled(client, token, added["id"])
    assert version["status"] == "READY"
    assert abs(version["analysis"]["bpm"] - 97) <= 1
    assert version["track"]["bpm"] == 64


async def test_a_file_that_is_not_audio_is_refused_and_leaves_nothing(
    client, member, session_factory
):
    token, band_id = member
    body = await upload(client, token, band_id, "notes.wav", b"just some words\n" * 100)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["field"] == "file"
    empty = await upload(client, token, band_id, "empty.wav", b"")
    assert empty["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    async with session_factory() as db:
        assert await db.scalar(select(func.count()).select_from(TrackVersion)) == 0
        assert await db.scalar(select(func.count()).select_from(Asset)) == 0
        assert await db.scalar(select(func.count()).select_from(Job)) == 0


async def test_an_oversize_upload_is_refused_and_leaves_nothing(
    client, member, session_factory, app_and_engine, monkeypatch, tmp_path
):
    app, _ = app_and_engine
    monkeypatch.setattr(app.state.settings, "max_upload_bytes", 50_000)
    token, band_id = member
    data = click_take(tmp_path / "long.wav", seconds=2)
    before = {key async for key in app.state.storage.list_keys()}
    body = await upload(client, token, band_id, "long.wav", data)
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["reason"] == "TOO_LARGE"
    async with session_factory() as db:
        assert await db.scalar(select(func.count()).select_from(TrackVersion)) == 0
    assert {key async for key in app.state.storage.list_keys()} == before


async def test_a_damaged_file_fails_with_a_reason_a_person_understands(client, member, tmp_path):
    token, band_id = member
    click_take(tmp_path / "cut.wav", seconds=4)
    data = encode(tmp_path / "cut.wav", tmp_path / "cut.flac", "flac").read_bytes()
    # A FLAC stream whose header promises 4 s, with most of its frames cut off.
    body = await upload(client, token, band_id, "cut.flac", data[: len(data) // 3])
    added = body["data"]["uploadVersion"]
    version = await wait_settled(client, token, added["id"])
    assert version["status"] == "FAILED"
    # Named as the band knows it, not as storage keeps it.
    assert "cut.flac" in version["failureReason"], version["failureReason"]
    jobs = (await gql(client, JOBS, {"b": band_id}, token=token)).ok()["band"]["jobs"]["nodes"]
    assert [(job["kind"], job["status"]) for job in jobs] == [("PROBE", "FAILED")]


async def test_strangers_cannot_upload_to_a_band(client, member, tmp_path):
    _, band_id = member
    stranger, _ = await register(client, "stranger")
    data = click_take(tmp_path / "x.wav", seconds=1)
    body = await upload(client, stranger, band_id, "x.wav", data)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_an_upload_that_states_an_oversize_length_is_refused_before_it_is_read(
    client, member, app_and_engine, monkeypatch, tmp_path
):
    app, _ = app_and_engine
    monkeypatch.setattr(app.state.settings, "max_upload_bytes", 100_000)
    token, band_id = member
    data = click_take(tmp_path / "set.wav", seconds=20)  # 3.5 MB, past limit + 1 MiB
    operations = {"query": UPLOAD, "variables": {"band": band_id, "file": None}}
    response = await client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": ("set.wav", data, "audio/wav")},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 413
    error = response.json()["errors"][0]
    assert error["extensions"] == {
        "code": "BAD_USER_INPUT",
        "field": "file",
        "reason": "TOO_LARGE",
        "maxBytes": 100_000,
    }
