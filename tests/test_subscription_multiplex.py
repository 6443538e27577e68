"""Multiplexed bandEvents over real websockets from a real uvicorn: subscribers of one band
with the same selection share one execution per event, over both protocols; selections
that depend on the viewer are still executed per viewer; a member who leaves the band
stops receiving; an event that fails ends no subscription. Then the parts alone: frames
written without a task per subscriber, and membership checks batched."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event

from backend.bands import live, membership
from backend.graphql.multiplex import Multiplexer
from backend.graphql.relay import parse_global_id, to_global_id
from backend.graphql.schema import schema
from backend.graphql.subscribers import (
    MAX_BACKLOG,
    Subscriber,
    data_frame_prefix,
    next_frame_prefix,
)
from tests.factories import add_take
from tests.graphql_client import gql, register
from tests.live_server import (
    LEGACY_WS,
    TRANSPORT_WS,
    connect,
    eventually,
    next_message,
    receive,
    serve,
    start,
    stop,
    subscribe,
)

COMMENTS = """subscription($id: ID!) { bandEvents(bandId: $id) {
  __typename ... on CommentAdded { comment { body author { handle } } } } }"""
# email is the viewer's own only; viewerReacted says whether the viewer reacted.
PERSONAL = """subscription($id: ID!) { bandEvents(bandId: $id) { __typename
  ... on CommentAdded { comment { body author { handle email } } }
  ... on ReactionChanged { summary { total counts { kind count viewerReacted } } } } }"""
ADD_COMMENT = (
    "mutation($v: ID!, $b: String!) { addComment(input: {versionId: $v, body: $b}) { id } }"
)


@pytest.fixture
async def server_url(app_and_engine, engine) -> AsyncIterator[str]:
    app, _ = app_and_engine
    async with serve(app) as url:
        yield url


@pytest.fixture
def executions(monkeypatch) -> list[str]:
    """Which contexts the multiplexer executed a selection with: 'shared' or 'viewer'."""
    seen: list[str] = []
    original = Multiplexer.execute

    async def counting(self: Multiplexer, plan: Any, ctx: Any, root: Any) -> Any:
        seen.append("shared" if type(ctx).__name__ == "SharedContext" else "viewer")
        return await original(self, plan, ctx, root)

    monkeypatch.setattr(Multiplexer, "execute", counting)
    return seen


async def band_with_members(client, name: str, members: int) -> tuple[str, list[tuple[str, str]]]:
    """A band and its people: [(token, user id)], the admin first."""
    owner = await register(client, f"{name}0")
    band_id = (
        await gql(
            client,
            "mutation($n: String!) { createBand(input: {name: $n}) { id } }",
            {"n": name},
            token=owner[0],
        )
    ).ok()["createBand"]["id"]
    people = [owner]
    for index in range(1, members):
        invite = (
            await gql(
                client,
                "mutation($b: ID!) { createInvite(bandId: $b) }",
                {"b": band_id},
                token=owner[0],
            )
        ).ok()["createInvite"]
        person = await register(client, f"{name}{index}")
        await gql(
            client,
            "mutation($t: String!) { acceptInvite(token: $t) { id } }",
            {"t": invite},
            token=person[0],
        )
        people.append(person)
    return band_id, people


def channel_of(band_id: str) -> str:
    return f"band:{parse_global_id(band_id)[1]}"


async def open_subscriptions(url: str, tokens: list[str], query: str, band_id: str) -> list[Any]:
    """One socket per token, alternating the two protocols, each subscribed as "s"."""
    sockets = []
    for index, token in enumerate(tokens):
        protocol = TRANSPORT_WS if index % 2 == 0 else LEGACY_WS
        socket_ = await connect(url, token, protocol)
        assert (await receive(socket_))["type"] == "connection_ack"
        if protocol == TRANSPORT_WS:
            await subscribe(socket_, "s", query, {"id": band_id})
        else:
            await start(socket_, "s", query, {"id": band_id})
        sockets.append(socket_)
    return sockets


def event_of(message: dict[str, Any]) -> dict[str, Any]:
    assert message["type"] in {"next", "data"} and message["id"] == "s", message
    assert "errors" not in message["payload"], message
    return message["payload"]["data"]["bandEvents"]


async def test_one_execution_per_event_for_every_subscriber_on_both_protocols(
    client, server_url, app_and_engine, session_factory, executions
):
    app, _ = app_and_engine
    band_id, people = await band_with_members(client, "mux", 6)
    version = await add_take(session_factory, band_id=band_id, title="anthem")
    sockets = await open_subscriptions(
        server_url, [token for token, _ in people], COMMENTS, band_id
    )
    # Six subscribers, one group: one subscription on the bus.
    await eventually(lambda: app.state.bus.subscriber_count(channel_of(band_id)) == 1)
    await asyncio.sleep(0.2)  # every subscriber has joined it

    for body in ("one", "two"):
        await gql(
            client,
            ADD_COMMENT,
            {"v": to_global_id("TrackVersion", version.id), "b": body},
            token=people[1][0],
        )
        for socket_ in sockets:
            assert event_of(await next_message(socket_)) == {
                "__typename": "CommentAdded",
                "comment": {"body": body, "author": {"handle": "mux1"}},
            }
    assert executions == ["shared", "shared"]

    # Leaving: legacy stop is answered with complete; the last one out ends the group.
    await stop(sockets[1], "s")
    assert await next_message(sockets[1]) == {"type": "complete", "id": "s"}
    for socket_ in sockets:
        await socket_.close()
    await eventually(lambda: app.state.bus.subscriber_count(channel_of(band_id)) == 0)


async def test_viewer_dependent_fields_are_executed_per_viewer(
    client, server_url, session_factory, executions
):
    band_id, people = await band_with_members(client, "own", 3)
    version = await add_take(session_factory, band_id=band_id, title="ballad")
    version_id = to_global_id("TrackVersion", version.id)
    sockets = await open_subscriptions(
        server_url, [token for token, _ in people], PERSONAL, band_id
    )
    await asyncio.sleep(0.3)

    await gql(client, ADD_COMMENT, {"v": version_id, "b": "mine"}, token=people[2][0])
    emails = [event_of(await next_message(s))["comment"]["author"]["email"] for s in sockets]
    assert emails == [None, None, "own2@example.org"]  # only the author sees it

    react = "mutation($t: ID!) { react(targetId: $t, kind: FIRE) { total } }"
    await gql(client, react, {"t": version_id}, token=people[0][0])
    summaries = [event_of(await next_message(s))["summary"] for s in sockets]
    assert [summary["total"] for summary in summaries] == [1, 1, 1]
    assert [summary["counts"][0]["viewerReacted"] for summary in summaries] == [True, False, False]
    # The shared attempts found the viewer asked for, then each viewer had its own.
    assert executions.count("viewer") == 6 and executions.count("shared") <= 2
    for socket_ in sockets:
        await socket_.close()


async def test_reaction_counts_are_shared_unless_viewer_reacted_is_asked(
    client, server_url, session_factory, executions, monkeypatch
):
    band_id, people = await band_with_members(client, "likes", 3)
    version = await add_take(session_factory, band_id=band_id, title="hit")
    version_id = to_global_id("TrackVersion", version.id)
    counts_only = """subscription($id: ID!) { bandEvents(bandId: $id) {
      ... on ReactionChanged { targetId summary { total counts { kind count } } } } }"""
    sockets = await open_subscriptions(
        server_url, [people[0][0], people[1][0]], counts_only, band_id
    )
    sockets += await open_subscriptions(server_url, [people[2][0]], PERSONAL, band_id)
    await asyncio.sleep(0.3)
    reads = []
    original = live._reactors

    async def counting(*args: Any) -> Any:
        reads.append(args[1:])
        return await original(*args)

    monkeypatch.setattr(live, "_reactors", counting)
    react = "mutation($t: ID!) { react(targetId: $t, kind: LOVE) { total } }"
    await gql(client, react, {"t": version_id}, token=people[1][0])
    shared = {
        "targetId": version_id,
        "summary": {"total": 1, "counts": [{"kind": "LOVE", "count": 1}]},
    }
    assert [event_of(await next_message(s)) for s in sockets[:2]] == [shared, shared]
    personal = event_of(await next_message(sockets[2]))["summary"]
    assert personal == {
        "total": 1,
        "counts": [{"kind": "LOVE", "count": 1, "viewerReacted": False}],
    }
    # The counts group executed once; the viewerReacted group tried once, then per viewer;
    # who reacted was read once for both.
    assert sorted(executions) == ["shared", "shared", "viewer"]
    assert len(reads) == 1
    for socket_ in sockets:
        await socket_.close()


async def test_a_member_who_leaves_stops_receiving(client, server_url, session_factory):
    band_id, people = await band_with_members(client, "leave", 3)
    version = await add_take(session_factory, band_id=band_id, title="goodbye")
    sockets = await open_subscriptions(
        server_url, [token for token, _ in people], COMMENTS, band_id
    )
    await asyncio.sleep(0.3)

    leaver_token, leaver_id = people[1]  # on the legacy protocol
    await gql(
        client,
        "mutation($b: ID!, $u: ID!) { removeMember(bandId: $b, userId: $u) }",
        {"b": band_id, "u": leaver_id},
        token=leaver_token,
    )
    await gql(
        client,
        ADD_COMMENT,
        {"v": to_global_id("TrackVersion", version.id), "b": "after"},
        token=people[0][0],
    )
    refused = await next_message(sockets[1])
    assert refused["type"] == "data" and refused["payload"]["data"] is None, refused
    assert refused["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert await next_message(sockets[1]) == {"type": "complete", "id": "s"}
    for socket_ in (sockets[0], sockets[2]):
        assert event_of(await next_message(socket_))["comment"]["body"] == "after"
    for socket_ in sockets:
        await socket_.close()


async def test_an_event_that_fails_ends_no_subscription(
    client, server_url, session_factory, monkeypatch
):
    band_id, people = await band_with_members(client, "fail", 2)
    version = await add_take(session_factory, band_id=band_id, title="shaky")
    version_id = to_global_id("TrackVersion", version.id)
    sockets = await open_subscriptions(
        server_url, [token for token, _ in people], COMMENTS, band_id
    )
    await asyncio.sleep(0.3)

    original = live.to_event
    failures = iter([True])

    async def flaky(ctx: Any, event: dict[str, Any]) -> Any:
        if next(failures, False):
            raise ConnectionError("the database went away")  # the shared load, for everyone
        return await original(ctx, event)

    monkeypatch.setattr(live, "to_event", flaky)
    await gql(client, ADD_COMMENT, {"v": version_id, "b": "lost"}, token=people[0][0])
    await gql(client, ADD_COMMENT, {"v": version_id, "b": "found"}, token=people[0][0])
    for socket_ in sockets:  # the first event is skipped, the subscriptions go on
        assert event_of(await next_message(socket_))["comment"]["body"] == "found"
    for socket_ in sockets:
        await socket_.close()


async def test_a_per_viewer_failure_is_that_viewers_alone(
    client, server_url, session_factory, monkeypatch
):
    band_id, people = await band_with_members(client, "solo", 3)
    version = await add_take(session_factory, band_id=band_id, title="wobbly")
    version_id = to_global_id("TrackVersion", version.id)
    sockets = await open_subscriptions(
        server_url, [token for token, _ in people], PERSONAL, band_id
    )
    await asyncio.sleep(0.3)

    unlucky = parse_global_id(people[1][1])[1]
    original = live.to_event
    failures = iter([True])

    async def flaky(ctx: Any, event: dict[str, Any]) -> Any:
        per_viewer = type(ctx).__name__ != "SharedContext"
        if per_viewer and ctx.viewer_id == unlucky and next(failures, False):
            raise ConnectionError("this viewer's load failed")
        return await original(ctx, event)

    monkeypatch.setattr(live, "to_event", flaky)
    await gql(client, ADD_COMMENT, {"v": version_id, "b": "first"}, token=people[0][0])
    await gql(client, ADD_COMMENT, {"v": version_id, "b": "second"}, token=people[0][0])
    bodies = [
        [event_of(await next_message(s))["comment"]["body"] for _ in range(2 if i != 1 else 1)]
        for i, s in enumerate(sockets)
    ]
    assert bodies == [["first", "second"], ["second"], ["first", "second"]]
    for socket_ in sockets:
        await socket_.close()


async def test_strangers_and_bad_input_are_refused_as_before(client, server_url):
    band_id, _ = await band_with_members(client, "closed", 1)
    stranger, _ = await register(client, "outsider")
    for protocol in (TRANSPORT_WS, LEGACY_WS):
        socket_ = await connect(server_url, stranger, protocol)
        assert (await receive(socket_))["type"] == "connection_ack"
        send = subscribe if protocol == TRANSPORT_WS else start
        await send(socket_, "s", COMMENTS, {"id": band_id})
        message = await next_message(socket_)
        assert message["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND", message
        assert await next_message(socket_) == {"type": "complete", "id": "s"}
        await send(socket_, "t", COMMENTS, {"id": to_global_id("Track", 1)})
        message = await next_message(socket_)
        assert message["payload"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", message
        assert await next_message(socket_) == {"type": "complete", "id": "t"}
        await socket_.close()


# Writing frames: at once when the socket takes them, in order behind a stalled one.


class FakeSocket:
    def __init__(self, *, stalled: bool = False, broken: bool = False) -> None:
        self.frames: list[str] = []
        self.open = asyncio.Event()
        if not stalled:
            self.open.set()
        self.broken = broken

    async def send_text(self, frame: str) -> None:
        if self.broken:
            raise RuntimeError("Cannot call send once a close message has been sent.")
        await self.open.wait()  # as uvicorn waits while the transport's buffer is full
        self.frames.append(frame)


async def test_frames_are_written_at_once_and_in_order_behind_a_stalled_socket():
    fast, slow, broken = FakeSocket(), FakeSocket(stalled=True), FakeSocket(broken=True)
    subscribers = [
        Subscriber(context=None, send_text=socket_.send_text, prefix=next_frame_prefix(name))
        for name, socket_ in (("f", fast), ("s", slow), ("b", broken))
    ]
    for payload in ('{"data":1}', '{"data":2}', '{"data":3}'):
        for subscriber in subscribers:
            subscriber.deliver(payload)
    # The fast socket had every frame without a task or a wait; the slow one held no one up.
    assert fast.frames == [
        f'{{"id":"f","type":"next","payload":{{"data":{n}}}}}' for n in (1, 2, 3)
    ]
    assert subscribers[0]._writer is None and slow.frames == []
    assert subscribers[2].gone and broken.frames == []

    slow.open.set()
    await subscribers[1].flush()
    assert slow.frames == [
        f'{{"id":"s","type":"next","payload":{{"data":{n}}}}}' for n in (1, 2, 3)
    ]
    assert subscribers[1]._writer is None
    subscribers[1].deliver('{"data":4}')  # writable again: at once
    assert slow.frames[-1].endswith('{"data":4}}')


async def test_a_stalled_socket_keeps_only_the_newest_frames():
    slow = FakeSocket(stalled=True)
    subscriber = Subscriber(context=None, send_text=slow.send_text, prefix=data_frame_prefix("1"))
    for number in range(MAX_BACKLOG + 10):
        subscriber.deliver(f'{{"data":{number}}}')
    slow.open.set()
    await subscriber.flush()
    assert len(slow.frames) == MAX_BACKLOG + 1  # the one in flight, then the newest
    assert slow.frames[0] == '{"type":"data","id":"1","payload":{"data":0}}'
    assert slow.frames[-1].endswith(f'{{"data":{MAX_BACKLOG + 9}}}}}')


# Membership checks: many sockets at once, few statements.


async def test_membership_checks_are_batched(client, session_factory, app_and_engine):
    _, engine = app_and_engine
    band_id, people = await band_with_members(client, "batch", 3)
    band_pk = parse_global_id(band_id)[1]
    member_pks = [parse_global_id(user_id)[1] for _, user_id in people]
    outsider = parse_global_id((await register(client, "nobody"))[1])[1]
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "band_members" in statement:
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        asked = [*member_pks * 100, outsider]
        answers = await asyncio.gather(
            *(
                membership.is_member(session_factory, band_id=band_pk, user_id=user_pk)
                for user_pk in asked
            )
        )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)
    assert answers == [True] * (len(asked) - 1) + [False]
    assert len(statements) <= 2, statements  # 301 sockets asking: one query (or two)
    assert await membership.member_ids(session_factory, band_id=band_pk) == set(member_pks)


# What the multiplexer takes; the rest goes the ordinary Strawberry way.


def test_only_plain_band_events_documents_are_multiplexed():
    mux = Multiplexer(schema, [live.BandEventsSource()], encode=json.dumps)
    band = to_global_id("Band", 1)
    plan = mux.plan(COMMENTS, None, {"id": band})
    assert plan is not None and plan.arguments == {"bandId": band}
    # Same document and variables, same group key, however the variables are ordered.
    a = mux.plan(COMMENTS, None, {"id": band, "x": 1, "y": 2})
    b = mux.plan(COMMENTS, None, {"y": 2, "x": 1, "id": band})
    assert a is not None and b is not None and a.key == b.key != plan.key

    refused = {
        "another field": ('subscription { jobProgress(jobId: "x") { status } }', None, {}),
        "a directive": (
            COMMENTS.replace("(bandId: $id)", "(bandId: $id) @include(if: true)"),
            None,
            {"id": band},
        ),
        "a syntax error": ("subscription {", None, {}),
        "invalid": ("subscription { bandEvents { nope } }", None, {}),
        "a missing variable": (COMMENTS, None, {}),
        "a query": ("query { viewer { id } }", None, {}),
        "no such operation": (COMMENTS, "Named", {"id": band}),
        "variables not an object": (COMMENTS, None, ["x"]),
    }
    for reason, (query, name, variables) in refused.items():
        assert mux.plan(query, name, variables) is None, reason
