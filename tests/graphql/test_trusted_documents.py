"""Trusted documents: the manifest read at start-up (and refused when it lies), and the
persisted-only rule, for the whole API or for one API token, over HTTP and over both
websocket protocols (the multiplexed bandEvents path included)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from backend.app import create_app
from backend.core.settings import Settings
from backend.graphql.persisted import trusted
from backend.graphql.persisted.models import PersistedQuery
from backend.graphql.relay import parse_global_id, to_global_id
from tests.factories import add_take
from tests.graphql.test_persisted_queries import (
    ME,
    NOT_FOUND,
    apq,
    bearer,
    data_of,
    get,
    sha256,
)
from tests.graphql_client import REGISTER
from tests.live_server import (
    LEGACY_WS,
    TRANSPORT_WS,
    connect,
    eventually,
    next_message,
    receive,
    serve,
)

CREATE_TOKEN = """mutation Token($persistedOnly: Boolean) {
  createApiToken(name: "bot", persistedOnly: $persistedOnly) { token } }"""
CREATE_BAND = 'mutation Band { createBand(input: {name: "Trusted"}) { id } }'
ADD_COMMENT = """mutation Comment($v: ID!, $b: String!) {
  addComment(input: {versionId: $v, body: $b}) { id } }"""
JOB = "subscription Job($id: ID!) { jobProgress(jobId: $id) { status } }"
BAND = """subscription Band($id: ID!) { bandEvents(bandId: $id) {
  __typename ... on CommentAdded { comment { body } } } }"""
TRUSTED = [REGISTER, ME, CREATE_TOKEN, CREATE_BAND, ADD_COMMENT, JOB, BAND]
UNTRUSTED = "query Untrusted { viewer { handle email } }"
ANY_JOB = to_global_id("Job", 1)


def write_manifest(path: Path, documents: dict[str, str]) -> Path:
    path.write_text(json.dumps(documents))
    return path


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "persisted-documents.json", {sha256(d): d for d in TRUSTED})


def settings_for(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        secret_key="test-secret-key-that-is-long-enough-for-hs256",
        worker_threads=0,  # the session's app runs the embedded workers
        watch_sources=False,
        **overrides,
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


async def post(client: httpx.AsyncClient, body: dict[str, Any], token: str | None = None):
    return (await client.post("/graphql", json=body, headers=bearer(token))).json()


def code(body: dict[str, Any]) -> str:
    assert "data" not in body, body
    return body["errors"][0]["extensions"]["code"]


async def sign_up(client: httpx.AsyncClient, handle: str) -> str:
    variables = {
        "input": {"email": f"{handle}@example.org", "password": "correct horse", "handle": handle}
    }
    body = await post(client, {"query": REGISTER, "variables": variables})
    return body["data"]["register"]["accessToken"]


# --- the manifest ------------------------------------------------------------------------


def test_the_manifest_is_read_and_every_entry_checked(tmp_path, manifest, monkeypatch):
    settings = Settings(trusted_documents=str(manifest))
    documents = trusted.load_trusted_documents(settings)
    assert len(documents) == len(TRUSTED) and documents.get(sha256(ME)) == ME

    # The documentId form of a key is accepted too.
    prefixed = write_manifest(tmp_path / "prefixed.json", {f"sha256:{sha256(ME)}": ME})
    assert trusted.read_manifest(prefixed) == {sha256(ME): ME}

    # No setting and no default file: no trusted documents, no error.
    monkeypatch.setattr(trusted, "DEFAULT_MANIFEST", tmp_path / "absent.json")
    assert len(trusted.load_trusted_documents(Settings(trusted_documents=""))) == 0


def test_a_manifest_that_lies_refuses_the_start(tmp_path, database_url):
    edited = write_manifest(tmp_path / "edited.json", {sha256(ME): ME + " "})
    with pytest.raises(trusted.TrustedDocumentsInvalid, match=sha256(ME)) as refused:
        create_app(settings_for(database_url, tmp_path, trusted_documents=str(edited)))
    assert "hashes to" in str(refused.value)

    missing = tmp_path / "nowhere.json"
    with pytest.raises(trusted.TrustedDocumentsInvalid, match="not a file"):
        create_app(settings_for(database_url, tmp_path, trusted_documents=str(missing)))

    for content in ("[]", "{not json", json.dumps({"abc": ME}), json.dumps({sha256(ME): 1})):
        (tmp_path / "bad.json").write_text(content)
        with pytest.raises(trusted.TrustedDocumentsInvalid):
            trusted.read_manifest(tmp_path / "bad.json")


async def test_trusted_documents_run_by_id_without_registering(
    engine, database_url, tmp_path, manifest
):
    settings = settings_for(database_url, tmp_path, trusted_documents=str(manifest))
    async with running(settings) as (_, client):
        token = await sign_up(client, "trusty")
        expected = {"viewer": {"handle": "trusty"}}
        assert (
            data_of(await post(client, {"documentId": f"sha256:{sha256(ME)}"}, token)) == expected
        )
        assert data_of(await post(client, {"extensions": apq(ME)}, token)) == expected
        got = await get(client, {"documentId": f"sha256:{sha256(ME)}"}, token)
        assert data_of(got) == expected
        # Not persisted-only: any other document still runs.
        assert data_of(await post(client, {"query": UNTRUSTED}, token))
    async with engine.connect() as connection:
        count = await connection.scalar(select(func.count()).select_from(PersistedQuery))
        assert count == 0  # a trusted document is never registered


# --- persisted-only, for everyone ---------------------------------------------------------


async def test_persisted_only_runs_trusted_documents_alone(
    engine, database_url, tmp_path, manifest
):
    settings = settings_for(
        database_url, tmp_path, trusted_documents=str(manifest), persisted_only=True
    )
    async with running(settings) as (_, client):
        # A full query whose text is a trusted document is one.
        token = await sign_up(client, "strict")
        expected = {"viewer": {"handle": "strict"}}
        assert data_of(await post(client, {"query": ME}, token)) == expected
        assert (
            data_of(await post(client, {"documentId": f"sha256:{sha256(ME)}"}, token)) == expected
        )

        refused = await post(client, {"query": UNTRUSTED}, token)
        assert code(refused) == "PERSISTED_QUERY_REQUIRED"
        assert refused["errors"][0]["message"].startswith("This API runs only trusted")
        # Nor may a client register one through automatic persisted queries.
        registering = await post(client, {"query": UNTRUSTED, "extensions": apq(UNTRUSTED)})
        assert code(registering) == "PERSISTED_QUERY_REQUIRED"
        # An id nobody knows is not found (the client may be newer than the manifest).
        assert await post(client, {"extensions": apq(UNTRUSTED)}) == NOT_FOUND
        assert await post(client, {"documentId": f"sha256:{sha256(UNTRUSTED)}"}) == NOT_FOUND
        over_get = await get(client, {"query": UNTRUSTED}, token)
        assert code(over_get.json()) == "PERSISTED_QUERY_REQUIRED"
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(PersistedQuery)) == 0


# --- persisted-only, for one API token ----------------------------------------------------


async def test_a_persisted_only_token_runs_trusted_documents_alone(
    engine, database_url, tmp_path, manifest
):
    settings = settings_for(database_url, tmp_path, trusted_documents=str(manifest))
    async with running(settings) as (_, client):
        login = await sign_up(client, "owner")
        created = await post(
            client, {"query": CREATE_TOKEN, "variables": {"persistedOnly": True}}, login
        )
        limited = created["data"]["createApiToken"]["token"]
        created = await post(
            client, {"query": CREATE_TOKEN, "variables": {"persistedOnly": False}}, login
        )
        unlimited = created["data"]["createApiToken"]["token"]

        expected = {"viewer": {"handle": "owner"}}
        by_id = await post(client, {"documentId": f"sha256:{sha256(ME)}"}, limited)
        assert data_of(by_id) == expected
        assert data_of(await post(client, {"extensions": apq(ME)}, limited)) == expected
        assert data_of(await post(client, {"query": ME}, limited)) == expected

        refused = await post(client, {"query": UNTRUSTED}, limited)
        assert code(refused) == "PERSISTED_QUERY_REQUIRED"
        assert refused["errors"][0]["message"].startswith("This API token runs only trusted")
        registering = await post(
            client, {"query": UNTRUSTED, "extensions": apq(UNTRUSTED)}, limited
        )
        assert code(registering) == "PERSISTED_QUERY_REQUIRED"

        # Registered by someone else, it is still not a trusted document for this token.
        await post(client, {"query": UNTRUSTED, "extensions": apq(UNTRUSTED)}, unlimited)
        assert code(await post(client, {"extensions": apq(UNTRUSTED)}, limited)) == (
            "PERSISTED_QUERY_REQUIRED"
        )
        assert data_of(await post(client, {"extensions": apq(UNTRUSTED)}, unlimited))
        assert data_of(await post(client, {"query": UNTRUSTED}, login))

        # A bad token is UNAUTHENTICATED before anything else is decided.
        assert code(await post(client, {"query": UNTRUSTED}, "blt_nonsense")) == "UNAUTHENTICATED"


async def test_a_persisted_only_token_on_a_websocket(engine, database_url, tmp_path, manifest):
    settings = settings_for(database_url, tmp_path, trusted_documents=str(manifest))
    async with running(settings) as (app, client), serve(app) as url:
        login = await sign_up(client, "socketeer")
        created = await post(
            client, {"query": CREATE_TOKEN, "variables": {"persistedOnly": True}}, login
        )
        limited = created["data"]["createApiToken"]["token"]
        for protocol in (TRANSPORT_WS, LEGACY_WS):
            socket_ = await connect(url, limited, protocol)
            assert (await receive(socket_))["type"] == "connection_ack"
            untrusted = "subscription Mine($id: ID!) { jobProgress(jobId: $id) { total } }"
            await send(socket_, protocol, "u", {"query": untrusted, "variables": {"id": ANY_JOB}})
            message = await answer(socket_)
            assert message["type"] == "error" and message["id"] == "u", message
            assert error_code(message) == "PERSISTED_QUERY_REQUIRED"
            assert "API token" in str(message["payload"])
            # A trusted one runs (the job does not exist: NOT_FOUND, from the resolver).
            await send(
                socket_, protocol, "t", {"extensions": apq(JOB), "variables": {"id": ANY_JOB}}
            )
            message = await answer(socket_)
            assert message["id"] == "t" and error_code(message) == "NOT_FOUND", message
            await socket_.close()


# --- websockets ---------------------------------------------------------------------------


def error_code(message: dict[str, Any]) -> str:
    payload = message["payload"]
    errors = payload if isinstance(payload, list) else payload.get("errors", [payload])
    return errors[0]["extensions"]["code"]


async def answer(socket_) -> dict[str, Any]:
    """The next message that is not the complete ending an earlier operation."""
    while (message := await next_message(socket_))["type"] == "complete":
        pass
    return message


async def send(socket_, protocol: str, op_id: str, payload: dict[str, Any]) -> None:
    kind = "subscribe" if protocol == TRANSPORT_WS else "start"
    await socket_.send(json.dumps({"id": op_id, "type": kind, "payload": payload}))


@pytest.fixture
async def strict_server(engine, database_url, tmp_path, manifest) -> AsyncIterator[tuple]:
    settings = settings_for(
        database_url, tmp_path, trusted_documents=str(manifest), persisted_only=True
    )
    async with running(settings) as (app, client), serve(app) as url:
        yield app, client, url


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_websocket_subscribe_must_use_a_trusted_document(strict_server, protocol):
    _, _, url = strict_server
    socket_ = await connect(url, None, protocol)
    assert (await receive(socket_))["type"] == "connection_ack"
    variables = {"id": ANY_JOB}
    error_type = "error"

    # By hash and by documentId: resolved to the trusted document, which then runs (and,
    # signed out, says UNAUTHENTICATED itself).
    await send(socket_, protocol, "hash", {"extensions": apq(JOB), "variables": variables})
    message = await answer(socket_)
    assert message["id"] == "hash" and error_code(message) == "UNAUTHENTICATED", message
    await send(
        socket_, protocol, "id", {"documentId": f"sha256:{sha256(JOB)}", "variables": variables}
    )
    message = await answer(socket_)
    assert message["id"] == "id" and error_code(message) == "UNAUTHENTICATED", message

    # Anything else: an error for that operation; the socket stays open.
    untrusted = "subscription Other($id: ID!) { jobProgress(jobId: $id) { status progress } }"
    await send(socket_, protocol, "other", {"query": untrusted, "variables": variables})
    message = await answer(socket_)
    assert message["type"] == error_type and message["id"] == "other", message
    assert error_code(message) == "PERSISTED_QUERY_REQUIRED"
    await send(socket_, protocol, "unknown", {"extensions": apq(untrusted)})
    message = await answer(socket_)
    assert message["type"] == error_type and error_code(message) == "PERSISTED_QUERY_NOT_FOUND"

    await send(socket_, protocol, "again", {"query": JOB, "variables": variables})
    message = await answer(socket_)
    assert message["id"] == "again" and error_code(message) == "UNAUTHENTICATED", message
    await socket_.close()


async def test_multiplexed_band_events_by_document_id(strict_server):
    app, client, url = strict_server
    token = await sign_up(client, "muxer")
    band_id = (await post(client, {"query": CREATE_BAND}, token))["data"]["createBand"]["id"]
    version = await add_take(app.state.session_factory, band_id=band_id, title="hymn")

    sockets = []
    for protocol in (TRANSPORT_WS, LEGACY_WS):
        socket_ = await connect(url, token, protocol)
        assert (await receive(socket_))["type"] == "connection_ack"
        payload = {"documentId": f"sha256:{sha256(BAND)}", "variables": {"id": band_id}}
        await send(socket_, protocol, "s", payload)
        sockets.append(socket_)
    # Both in one multiplexed group: one subscription on the bus.
    channel = f"band:{parse_global_id(band_id)[1]}"
    await eventually(lambda: app.state.bus.subscriber_count(channel) == 1)
    await asyncio.sleep(0.2)  # and the second subscriber has joined it

    comment = {"v": to_global_id("TrackVersion", version.id), "b": "by id"}
    body = await post(
        client, {"documentId": f"sha256:{sha256(ADD_COMMENT)}", "variables": comment}, token
    )
    assert "errors" not in body, body
    for socket_ in sockets:
        message = await next_message(socket_)
        assert message["type"] in {"next", "data"}, message
        assert message["payload"]["data"]["bandEvents"] == {
            "__typename": "CommentAdded",
            "comment": {"body": "by id"},
        }
        await socket_.close()
