"""Live updates over a real websocket (graphql-transport-ws) from a real uvicorn:
a scan's progress on jobProgress, its new takes and a comment on bandEvents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import websockets
from sqlalchemy import event

from backend.graphql.relay import to_global_id
from tests.audio_fixtures import write_wav
from tests.factories import add_take
from tests.graphql_client import gql, register
from tests.live_server import connect, next_message, serve, subscribe


@pytest.fixture
async def server_url(app_and_engine, engine) -> AsyncIterator[str]:
    app, _ = app_and_engine
    # The session's app already ran its start-up; uvicorn only serves it.
    async with serve(app) as url:
        yield url


JOB = """subscription($id: ID!) { jobProgress(jobId: $id) {
  status progress processed total added } }"""
BAND = """subscription($id: ID!) { bandEvents(bandId: $id) {
  __typename
  ... on VersionAdded { version { label track { title } } }
  ... on CommentAdded { comment { body author { handle } } }
  ... on JobUpdated { job { status } }
} }"""


async def test_scan_progress_and_new_takes_arrive_live(client, server_url, tmp_path_factory):
    token, _ = await register(client, "live")
    band_id = (
        await gql(client, 'mutation { createBand(input: {name: "Live"}) { id } }', token=token)
    ).ok()["createBand"]["id"]
    folder = tmp_path_factory.mktemp("live")
    for index in range(30):
        path = folder / "240301" / f"song{index % 3}" / f"take{index}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, seconds=0.05, tone_hz=100 + index * 10)
    add = 'mutation($b: ID!, $r: String!) { addSource(input: {bandId: $b, kind: LOCAL_FOLDER, name: "x", root: $r}) { id } }'
    source_id = (await gql(client, add, {"b": band_id, "r": str(folder)}, token=token)).ok()[
        "addSource"
    ]["id"]

    band_socket = await connect(server_url, token)
    await subscribe(band_socket, "band", BAND, {"id": band_id})
    await asyncio.sleep(0.2)  # the subscription is registered before the scan starts

    job = (
        await gql(
            client,
            "mutation($s: ID!) { scanSource(sourceId: $s) { id } }",
            {"s": source_id},
            token=token,
        )
    ).ok()["scanSource"]
    job_socket = await connect(server_url, token)
    await subscribe(job_socket, "job", JOB, {"id": job["id"]})
    states = []
    while True:
        message = await next_message(job_socket)
        if message["type"] == "complete":
            break
        assert message["type"] == "next", message
        states.append(message["payload"]["data"]["jobProgress"])
    assert states[-1]["status"] == "SUCCEEDED" and states[-1]["added"] == 30
    progress = [state["progress"] for state in states]
    assert progress == sorted(progress) and progress[-1] == 1.0

    added = []
    while len(added) < 30:
        event = (await next_message(band_socket))["payload"]["data"]["bandEvents"]
        if event["__typename"] == "VersionAdded":
            added.append(event["version"])
    assert {take["track"]["title"] for take in added} == {"song0", "song1", "song2"}

    # A comment made over HTTP reaches the same subscriber.
    versions = await gql(
        client,
        "query($b: ID!) { band(id: $b) { tracks(first: 1) { nodes { latestVersion { id } } } } }",
        {"b": band_id},
        token=token,
    )
    version_id = versions.ok()["band"]["tracks"]["nodes"][0]["latestVersion"]["id"]
    await gql(
        client,
        'mutation($v: ID!) { addComment(input: {versionId: $v, body: "groovy"}) { id } }',
        {"v": version_id},
        token=token,
    )
    while True:
        event = (await next_message(band_socket))["payload"]["data"]["bandEvents"]
        if event["__typename"] == "CommentAdded":
            assert event["comment"] == {"body": "groovy", "author": {"handle": "live"}}
            break
    await band_socket.close()
    await job_socket.close()


async def test_bad_token_closes_with_4403_and_strangers_get_not_found(client, server_url):
    bad = await connect(server_url, "not-a-token")
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await next_message(bad)
    assert closed.value.rcvd.code == 4403

    owner, _ = await register(client, "owner")
    stranger, _ = await register(client, "stranger")
    band_id = (
        await gql(client, 'mutation { createBand(input: {name: "Private"}) { id } }', token=owner)
    ).ok()["createBand"]["id"]
    socket_ = await connect(server_url, stranger)
    await subscribe(socket_, "1", BAND, {"id": band_id})
    message = await next_message(socket_)
    assert message["type"] == "error" or message["payload"].get("errors"), message
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"
    await socket_.close()


async def test_one_event_is_loaded_once_for_all_subscribers(client, server_url, session_factory):
    """bandEvents with many subscribers in one process: the new comment and its author are
    read from the database once, not once per subscriber (fan-out stays cheap)."""
    token, _ = await register(client, "fans")
    band_id = (
        await gql(client, 'mutation { createBand(input: {name: "Fans"}) { id } }', token=token)
    ).ok()["createBand"]["id"]
    version = await add_take(session_factory, band_id=band_id, title="anthem")
    subscribers = 20
    sockets = [await connect(server_url, token) for _ in range(subscribers)]
    query = "subscription($id: ID!) { bandEvents(bandId: $id) { __typename ... on CommentAdded { comment { body author { handle } } } } }"
    for index, socket_ in enumerate(sockets):
        await subscribe(socket_, f"s{index}", query, {"id": band_id})
    await asyncio.sleep(0.3)  # every subscription is registered before the comment

    loads: list[str] = []

    def note(_conn, _cursor, statement: str, *_args) -> None:
        if statement.lstrip().startswith("SELECT") and (
            "FROM comments" in statement or "FROM users" in statement
        ):
            loads.append(statement)

    engine = client._transport.app.state.engine
    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        await gql(
            client,
            'mutation($v: ID!) { addComment(input: {versionId: $v, body: "loud"}) { id } }',
            {"v": to_global_id("TrackVersion", version.id)},
            token=token,
        )
        received = [await next_message(socket_) for socket_ in sockets]
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)
        for socket_ in sockets:
            await socket_.close()
    expected = {"body": "loud", "author": {"handle": "fans"}}
    assert all(m["payload"]["data"]["bandEvents"]["comment"] == expected for m in received)
    # The mutation's own reads, and one comment and one author for all 20 subscribers.
    assert len(loads) <= 4, loads
