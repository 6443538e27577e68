"""Watched sources: new takes appear without anyone pressing scan. The local folder test
runs the app's own watcher (filesystem events); the WebDAV test runs a watcher with a
short poll against a real wsgidav share."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest

from backend.core.settings import Settings
from backend.library import watching
from backend.library.watching import SourceWatcher
from tests import services
from tests.audio_fixtures import write_wav
from tests.graphql_client import gql, register
from tests.library.test_scan import tree
from tests.webdav_server import DEFAULT_PASSWORD, DEFAULT_USER, running_webdav_server

ADD = """
mutation($band: ID!, $kind: SourceKind!, $root: String!, $user: String, $password: String) {
  addSource(input: {bandId: $band, kind: $kind, name: "Watched", root: $root,
                    username: $user, password: $password, watch: true}) { id watch }
}
"""
TAKES = """query($b: ID!) { band(id: $b) { tracks { nodes { versions { nodes {
  path sizeBytes status } } } } } }"""
JOBS = """query($b: ID!) { band(id: $b) {
  all: jobs { totalCount } busy: jobs(status: [QUEUED, RUNNING]) { totalCount } } }"""


@pytest.fixture
async def band(client):
    token, _ = await register(client, "watcher")
    created = await gql(
        client, 'mutation { createBand(input: {name: "Ears"}) { id } }', token=token
    )
    return token, created.ok()["createBand"]["id"]


async def takes(client, token, band_id) -> dict[str, dict]:
    data = (await gql(client, TAKES, {"b": band_id}, token=token)).ok()["band"]
    return {
        version["path"]: version
        for track in data["tracks"]["nodes"]
        for version in track["versions"]["nodes"]
    }


async def wait_for(check, *, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {seconds} s")
        await asyncio.sleep(0.1)


async def test_a_watched_folder_picks_up_new_takes_and_waits_for_copies_to_finish(
    client, band, tmp_path
):
    token, band_id = band
    tree(tmp_path, ["231015/groove/take1.wav"])
    variables = {"band": band_id, "kind": "LOCAL_FOLDER", "root": str(tmp_path)}
    source = (await gql(client, ADD, variables, token=token)).ok()["addSource"]
    assert source["watch"] is True
    # What was there before watching began is caught up with, without a scan request.
    await wait_for(lambda: _has(client, token, band_id, "231015/groove/take1.wav"))

    # A new take, copied slowly: it is indexed once, complete.
    full = write_wav(tmp_path / "whole.wav", seconds=3.0)
    data = full.read_bytes()
    full.unlink()
    target = tmp_path / "231015" / "groove" / "take2.wav"
    with target.open("wb") as copy:
        for start in range(0, len(data), len(data) // 6):
            copy.write(data[start : start + len(data) // 6])
            copy.flush()
            await asyncio.sleep(0.25)
    take = await wait_for(lambda: _has(client, token, band_id, "231015/groove/take2.wav"))
    await asyncio.sleep(1.5)  # any second scan of a half-copied file would show by now
    take = (await takes(client, token, band_id))["231015/groove/take2.wav"]
    assert take["sizeBytes"] == len(data), take

    # Watching off: new files wait for a scan.
    await gql(
        client,
        "mutation($id: ID!) { updateSource(id: $id, watch: false) { id } }",
        {"id": source["id"]},
        token=token,
    )
    await asyncio.sleep(0.5)
    tree(tmp_path, ["231022/unwatched.wav"])
    await asyncio.sleep(3.0)
    assert "231022/unwatched.wav" not in await takes(client, token, band_id)


async def test_a_watched_share_is_polled(client, band, tmp_path, app_and_engine):
    app, _ = app_and_engine
    token, band_id = band
    tree(tmp_path, ["231015/take1.wav"])
    requests: list[tuple[str, str]] = []
    with running_webdav_server(tmp_path, folder_etags=True, requests=requests) as url:
        variables = {
            "band": band_id,
            "kind": "WEBDAV",
            "root": url,
            "user": DEFAULT_USER,
            "password": DEFAULT_PASSWORD,
        }
        (await gql(client, ADD, variables, token=token)).ok()
        settings = app.state.settings.model_copy(update={"webdav_poll_seconds": 0.3})
        watcher = SourceWatcher(
            session_factory=app.state.session_factory,
            settings=settings,
            queue=app.state.queue,
            bus=app.state.bus,
        )
        task = asyncio.create_task(watcher.run())
        try:
            await wait_for(lambda: _has(client, token, band_id, "231015/take1.wav"))
            tree(tmp_path, ["231022/take1.wav"])
            await wait_for(lambda: _has(client, token, band_id, "231022/take1.wav"))
            settled = await wait_for(lambda: _idle_job_count(client, token, band_id))

            # Unchanged: polls go on (one PROPFIND of the root each) but ask for no scan.
            requests.clear()
            await asyncio.sleep(1.5)
            assert await _idle_job_count(client, token, band_id) == settled
            propfinds = [path for method, path in requests if method == "PROPFIND"]
            assert propfinds and all(path.endswith("/kim/") for path in propfinds), propfinds
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _has(client, token, band_id, path) -> dict | None:
    return (await takes(client, token, band_id)).get(path)


async def _idle_job_count(client, token, band_id) -> int | None:
    """How many jobs the band has had, once none is queued or running."""
    jobs = (await gql(client, JOBS, {"b": band_id}, token=token)).ok()["band"]
    return None if jobs["busy"]["totalCount"] else jobs["all"]["totalCount"]


async def test_one_process_holds_the_watcher_lease():
    try:
        await services.redis_available()
    except Exception as error:
        services.missing("Redis on 127.0.0.1:6379", error)
    settings = Settings(redis_url=services.REDIS_URL, redis_prefix=f"test-{uuid.uuid4().hex}")
    first, second = watching._Lease(settings), watching._Lease(settings)
    try:
        assert await first.hold() is True
        assert await second.hold() is False
        assert await first.hold() is True  # renewed
        await first.release()
        assert await second.hold() is True
    finally:
        await second.release()
        await first.release()
