"""Comments on a moment of a take, threads, tombstones; reactions and their summaries."""

from __future__ import annotations

from datetime import date

import pytest

from backend.graphql.relay import to_global_id
from tests.factories import add_take
from tests.graphql_client import gql, register
from tests.trusted_documents import THREADS

ADD = """
mutation($input: AddCommentInput!) {
  addComment(input: $input) { id body atMs endMs parent { id } author { handle } resolved }
}
"""
REACT = "mutation($t: ID!, $k: ReactionKind!) { react(targetId: $t, kind: $k) { total counts { kind count viewerReacted } } }"
UNREACT = "mutation($t: ID!, $k: ReactionKind!) { unreact(targetId: $t, kind: $k) { total counts { kind count viewerReacted } } }"


@pytest.fixture
async def take(client, session_factory):
    """A band with two members and one take: (admin token, member token, version id)."""
    admin, _ = await register(client, "bass")
    member, _ = await register(client, "drums")
    band_id = (
        await gql(client, 'mutation { createBand(input: {name: "Echo"}) { id } }', token=admin)
    ).ok()["createBand"]["id"]
    invite = await gql(
        client, "mutation($b: ID!) { createInvite(bandId: $b) }", {"b": band_id}, token=admin
    )
    await gql(
        client,
        "mutation($t: String!) { acceptInvite(token: $t) { id } }",
        {"t": invite.ok()["createInvite"]},
        token=member,
    )
    version = await add_take(
        session_factory,
        band_id=band_id,
        title="Echo",
        session_date=date(2023, 5, 1),
        duration_ms=60_000,
    )
    return admin, member, to_global_id("TrackVersion", version.id)


async def test_comments_are_ordered_by_moment_and_threaded(client, take):
    admin, member, version_id = take
    late = (
        await gql(
            client,
            ADD,
            {"input": {"versionId": version_id, "body": "outro drags", "atMs": 50_000}},
            token=admin,
        )
    ).ok()
    await gql(
        client,
        ADD,
        {"input": {"versionId": version_id, "body": "intro!", "atMs": 1_000, "endMs": 4_000}},
        token=member,
    )
    await gql(
        client, ADD, {"input": {"versionId": version_id, "body": "overall good"}}, token=member
    )
    reply = await gql(
        client,
        ADD,
        {
            "input": {
                "versionId": version_id,
                "body": "agreed",
                "parentId": late["addComment"]["id"],
            }
        },
        token=member,
    )
    assert reply.ok()["addComment"]["parent"] == {"id": late["addComment"]["id"]}
    # A reply to a reply joins the same thread.
    nested = await gql(
        client,
        ADD,
        {
            "input": {
                "versionId": version_id,
                "body": "me too",
                "parentId": reply.ok()["addComment"]["id"],
            }
        },
        token=admin,
    )
    assert nested.ok()["addComment"]["parent"] == {"id": late["addComment"]["id"]}

    comments = (await gql(client, THREADS, {"v": version_id}, token=admin)).ok()["node"]["comments"]
    assert [c["body"] for c in comments["nodes"]] == ["intro!", "outro drags", "overall good"]
    assert comments["totalCount"] == 3
    thread = comments["nodes"][1]["replies"]
    assert thread["totalCount"] == 2
    assert [r["body"] for r in thread["nodes"]] == ["agreed", "me too"]


async def test_deleted_comment_with_replies_stays_as_tombstone(client, take):
    admin, member, version_id = take
    parent = (
        await gql(
            client,
            ADD,
            {"input": {"versionId": version_id, "body": "too fast", "atMs": 10}},
            token=member,
        )
    ).ok()
    lonely = (
        await gql(
            client,
            ADD,
            {"input": {"versionId": version_id, "body": "typo", "atMs": 20}},
            token=member,
        )
    ).ok()
    await gql(
        client,
        ADD,
        {
            "input": {
                "versionId": version_id,
                "body": "no, fine",
                "parentId": parent["addComment"]["id"],
            }
        },
        token=admin,
    )
    delete = "mutation($id: ID!) { deleteComment(id: $id) }"
    assert (await gql(client, delete, {"id": parent["addComment"]["id"]}, token=member)).ok()
    assert (await gql(client, delete, {"id": lonely["addComment"]["id"]}, token=member)).ok()

    comments = (await gql(client, THREADS, {"v": version_id}, token=admin)).ok()["node"]["comments"]
    assert comments["totalCount"] == 1
    tombstone = comments["nodes"][0]
    assert tombstone["body"] == "" and tombstone["deletedAt"]
    assert tombstone["replies"]["nodes"][0]["body"] == "no, fine"
    # A deleted comment cannot be edited or deleted again.
    edit = 'mutation($id: ID!) { editComment(id: $id, body: "x") { id } }'
    assert (await gql(client, edit, {"id": parent["addComment"]["id"]}, token=member)).codes == [
        "NOT_FOUND"
    ]
    count = "query($v: ID!) { node(id: $v) { ... on TrackVersion { track { commentCount } } } }"
    assert (await gql(client, count, {"v": version_id}, token=admin)).ok()["node"]["track"][
        "commentCount"
    ] == 1


async def test_edit_and_resolve(client, take):
    admin, member, version_id = take
    created = (
        await gql(
            client,
            ADD,
            {"input": {"versionId": version_id, "body": "tempo?", "atMs": 0}},
            token=member,
        )
    ).ok()
    comment_id = created["addComment"]["id"]
    edit = "mutation($id: ID!, $b: String!) { editComment(id: $id, body: $b) { body editedAt } }"
    edited = (await gql(client, edit, {"id": comment_id, "b": " tempo is off "}, token=member)).ok()
    assert edited["editComment"]["body"] == "tempo is off" and edited["editComment"]["editedAt"]
    resolve = (
        "mutation($id: ID!, $r: Boolean!) { resolveComment(id: $id, resolved: $r) { resolved } }"
    )
    # The admin may resolve anyone's comment.
    assert (await gql(client, resolve, {"id": comment_id, "r": True}, token=admin)).ok()[
        "resolveComment"
    ] == {"resolved": True}
    assert (await gql(client, resolve, {"id": comment_id, "r": False}, token=member)).ok()[
        "resolveComment"
    ] == {"resolved": False}


async def test_reactions_are_idempotent_and_per_viewer(client, take):
    admin, member, version_id = take
    first = (await gql(client, REACT, {"t": version_id, "k": "FIRE"}, token=admin)).ok()["react"]
    again = (await gql(client, REACT, {"t": version_id, "k": "FIRE"}, token=admin)).ok()["react"]
    assert (
        first
        == again
        == {"total": 1, "counts": [{"kind": "FIRE", "count": 1, "viewerReacted": True}]}
    )
    both = (await gql(client, REACT, {"t": version_id, "k": "FIRE"}, token=member)).ok()["react"]
    await gql(client, REACT, {"t": version_id, "k": "LIKE"}, token=member)
    assert both["total"] == 2
    summary = "query($v: ID!) { node(id: $v) { ... on TrackVersion { reactions { total counts { kind count viewerReacted } } } } }"
    seen_by_admin = (await gql(client, summary, {"v": version_id}, token=admin)).ok()["node"][
        "reactions"
    ]
    assert seen_by_admin == {
        "total": 3,
        "counts": [
            {"kind": "LIKE", "count": 1, "viewerReacted": False},
            {"kind": "FIRE", "count": 2, "viewerReacted": True},
        ],
    }
    after = (await gql(client, UNREACT, {"t": version_id, "k": "FIRE"}, token=admin)).ok()[
        "unreact"
    ]
    assert after["total"] == 2
    assert {"kind": "FIRE", "count": 1, "viewerReacted": False} in after["counts"]
    # Taking back a reaction one never gave changes nothing.
    assert (await gql(client, UNREACT, {"t": version_id, "k": "SAD"}, token=admin)).ok()["unreact"][
        "total"
    ] == 2


async def test_react_to_comment_and_track(client, take):
    admin, _, version_id = take
    comment_id = (
        await gql(client, ADD, {"input": {"versionId": version_id, "body": "wow"}}, token=admin)
    ).ok()["addComment"]["id"]
    assert (await gql(client, REACT, {"t": comment_id, "k": "LAUGH"}, token=admin)).ok()["react"][
        "total"
    ] == 1
    track = "query($v: ID!) { node(id: $v) { ... on TrackVersion { track { id } } } }"
    track_id = (await gql(client, track, {"v": version_id}, token=admin)).ok()["node"]["track"][
        "id"
    ]
    assert (await gql(client, REACT, {"t": track_id, "k": "LOVE"}, token=admin)).ok()["react"][
        "total"
    ] == 1
    band = "query { viewer { bands { nodes { id } } } }"
    band_id = (await gql(client, band, token=admin)).ok()["viewer"]["bands"]["nodes"][0]["id"]
    wrong = await gql(client, REACT, {"t": band_id, "k": "LOVE"}, token=admin)
    assert (
        wrong.codes == ["BAD_USER_INPUT"] and wrong.errors[0]["extensions"]["field"] == "targetId"
    )
