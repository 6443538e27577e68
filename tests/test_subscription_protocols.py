"""Both websocket protocols from a real uvicorn: the legacy graphql-ws (start / data /
stop / complete) serves jobProgress and bandEvents as graphql-transport-ws does, under the
same rules: the token in connection_init, 4403 for a bad one, and 4408 for a socket that
sends no connection_init in time (a setting, 10 s unless told otherwise)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

from backend.app import create_app
from backend.core.settings import Settings
from backend.graphql.relay import parse_global_id, to_global_id
from tests.audio_fixtures import write_wav
from tests.graphql_client import gql, register
from tests.live_server import (
    LEGACY_WS,
    TRANSPORT_WS,
    close_code,
    connect,
    eventually,
    next_message,
    open_socket,
    receive,
    send_init,
    serve,
    start,
    stop,
)

JOB = """subscription($id: ID!) { jobProgress(jobId: $id) { status progress added } }"""
BAND = """subscription($id: ID!) { bandEvents(bandId: $id) {
  __typename
  ... on VersionAdded { version { label track { title } } }
} }"""
ADD_SOURCE = """mutation($b: ID!, $r: String!) {
  addSource(input: {bandId: $b, kind: LOCAL_FOLDER, name: "x", root: $r}) { id } }"""
TAKES = 6
ANY_JOB = to_global_id("Job", 1)  # signed out, whether it exists is never looked at


@pytest.fixture
async def server_url(app_and_engine, engine) -> AsyncIterator[str]:
    app, _ = app_and_engine
    async with serve(app) as url:
        yield url


async def test_legacy_protocol_streams_job_progress_and_band_events(
    client, server_url, app_and_engine, tmp_path_factory
):
    app, _ = app_and_engine
    token, _ = await register(client, "legacy")
    band_id = (
        await gql(client, 'mutation { createBand(input: {name: "Old"}) { id } }', token=token)
    ).ok()["createBand"]["id"]
    folder = tmp_path_factory.mktemp("legacy")
    for index in range(TAKES):
        path = folder / "240301" / f"song{index % 2}" / f"take{index}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, seconds=0.05, tone_hz=120 + index * 10)
    source_id = (await gql(client, ADD_SOURCE, {"b": band_id, "r": str(folder)}, token=token)).ok()[
        "addSource"
    ]["id"]

    socket_ = await connect(server_url, token, LEGACY_WS)
    assert await receive(socket_) == {"type": "connection_ack"}
    await start(socket_, "band", BAND, {"id": band_id})
    # Registered on the bus before the scan starts: no VersionAdded can be missed.
    band_channel = f"band:{parse_global_id(band_id)[1]}"
    await eventually(lambda: app.state.bus.subscriber_count(band_channel) == 1)

    scan = "mutation($s: ID!) { scanSource(sourceId: $s) { id } }"
    job_id = (await gql(client, scan, {"s": source_id}, token=token)).ok()["scanSource"]["id"]
    await start(socket_, "job", JOB, {"id": job_id})

    states, added, job_complete = [], [], False
    while not job_complete or len(added) < TAKES:
        message = await next_message(socket_)
        if message["id"] == "job" and message["type"] == "complete":
            job_complete = True
            continue
        assert message["type"] == "data", message
        assert "errors" not in message["payload"], message
        data = message["payload"]["data"]
        if message["id"] == "job":
            states.append(data["jobProgress"])
        elif data["bandEvents"]["__typename"] == "VersionAdded":
            added.append(data["bandEvents"]["version"])
    assert states[-1] == {"status": "SUCCEEDED", "progress": 1.0, "added": TAKES}
    progress = [state["progress"] for state in states]
    assert progress == sorted(progress)
    assert len(added) == TAKES
    assert {take["track"]["title"] for take in added} == {"song0", "song1"}

    # stop ends the operation with complete, and unsubscribes it from the bus.
    await stop(socket_, "band")
    while (message := await next_message(socket_))["type"] != "complete":
        assert message["type"] == "data" and message["id"] == "band", message  # in flight
    assert message == {"type": "complete", "id": "band"}
    await eventually(lambda: app.state.bus.subscriber_count(band_channel) == 0)
    await socket_.close()


async def test_legacy_protocol_checks_the_token_as_graphql_transport_ws_does(client, server_url):
    # A bad token: connection_error, then closed with 4403, as on graphql-transport-ws.
    bad = await connect(server_url, "not-a-token", LEGACY_WS)
    refusal = await receive(bad)
    assert refusal["type"] == "connection_error" and refusal["payload"]["message"], refusal
    assert await close_code(bad) == 4403
    assert await close_code(await connect(server_url, "not-a-token", TRANSPORT_WS)) == 4403

    # No token: signed out, so the subscription itself says UNAUTHENTICATED.
    anonymous = await connect(server_url, None, LEGACY_WS)
    assert await receive(anonymous) == {"type": "connection_ack"}
    await start(anonymous, "1", JOB, {"id": ANY_JOB})
    message = await next_message(anonymous)
    assert message["type"] == "data" and message["id"] == "1", message
    assert message["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    await anonymous.close()

    # Starting before connection_init is refused (4401).
    hasty = await open_socket(server_url, LEGACY_WS)
    await start(hasty, "1", JOB, {"id": ANY_JOB})
    assert await close_code(hasty) == 4401


@pytest.fixture
async def impatient_server(database_url, tmp_path) -> AsyncIterator[str]:
    """An app of its own whose websockets wait 1 s for connection_init."""
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        secret_key="test-secret-key-that-is-long-enough-for-hs256",
        worker_threads=0,  # the session's app runs the embedded workers
        ws_init_timeout_seconds=1.0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), serve(app) as url:
        yield url


async def test_no_connection_init_in_time_closes_with_4408(impatient_server):
    began = time.monotonic()
    silent = [
        await open_socket(impatient_server, protocol) for protocol in (LEGACY_WS, TRANSPORT_WS)
    ]
    polite = {
        protocol: await open_socket(impatient_server, protocol)
        for protocol in (LEGACY_WS, TRANSPORT_WS)
    }
    for socket_ in polite.values():
        await send_init(socket_, None)
        assert (await receive(socket_))["type"] == "connection_ack"

    codes = await asyncio.gather(*(close_code(socket_) for socket_ in silent))
    waited = time.monotonic() - began
    assert codes == [4408, 4408]
    assert 0.9 <= waited < 5, waited

    # Past the timeout, the sockets that said connection_init still serve.
    await start(polite[LEGACY_WS], "1", JOB, {"id": ANY_JOB})
    message = await next_message(polite[LEGACY_WS])
    assert message["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    await polite[TRANSPORT_WS].send(json.dumps({"type": "ping"}))
    assert await receive(polite[TRANSPORT_WS]) == {"type": "pong"}
    for socket_ in polite.values():
        await socket_.close()


def test_init_timeout_is_ten_seconds_unless_set(monkeypatch):
    monkeypatch.delenv("BACKLINE_WS_INIT_TIMEOUT_SECONDS", raising=False)
    assert Settings().ws_init_timeout_seconds == 10.0
    monkeypatch.setenv("BACKLINE_WS_INIT_TIMEOUT_SECONDS", "2.5")
    assert Settings().ws_init_timeout_seconds == 2.5
    monkeypatch.setenv("BACKLINE_WS_INIT_TIMEOUT_SECONDS", "0")
    with pytest.raises(ValidationError):
        Settings()
