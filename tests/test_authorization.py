"""The authorisation matrix: every query and mutation, asked by each kind of caller.

The world (tests.factories.build_band_world): band "hum" with its admin (ada), two members
who joined by invite (ben = "member", cy = "member2"), tracks, takes, a session, comments,
reactions, a job and a source; a stranger (zed) with a band of their own; and signed out.

Rules (backend/bands/access.py): members may read and edit the band's things; admin-only
actions answer FORBIDDEN to members; a stranger is told every object of the band does not
exist (NOT_FOUND, never FORBIDDEN); signed out, everything but `viewer`, `register` and
`login` is UNAUTHENTICATED. A refused mutation leaves every table exactly as it was."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.graphql.relay import parse_global_id, to_global_id
from tests.factories import (
    BandWorld,
    build_band_world,
    cheap_password_hashing,
    database_snapshot,
)
from tests.graphql_client import Result, gql

OK = "OK"
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"

# The usual outcome for something any member may do.
MEMBERS_MAY = {
    "admin": OK,
    "member": OK,
    "stranger": NOT_FOUND,
    "signed_out": UNAUTHENTICATED,
}
# ...and for something only a band admin may do.
ADMINS_MAY = {
    "admin": OK,
    "member": FORBIDDEN,
    "member2": FORBIDDEN,
    "stranger": NOT_FOUND,
    "signed_out": UNAUTHENTICATED,
}


@dataclass
class Env:
    """What a case's check may use after the request succeeded."""

    client: httpx.AsyncClient
    session_factory: async_sessionmaker[AsyncSession]
    world: BandWorld
    role: str

    async def ask(self, document: str, variables: dict[str, Any] | None = None, *, as_: str = ""):
        return await gql(
            self.client, document, variables, token=self.world.tokens[as_ or self.role]
        )


Check = Callable[[Env, dict[str, Any]], Awaitable[None] | None]


@dataclass(frozen=True)
class Case:
    name: str
    document: str
    variables: Callable[[BandWorld], dict[str, Any]]
    outcomes: dict[str, str]
    check: Check | None = None


@pytest.fixture
async def world(client, session_factory, monkeypatch) -> BandWorld:
    cheap_password_hashing(monkeypatch)
    return await build_band_world(client, session_factory)


def _params(cases: list[Case]) -> list[Any]:
    return [
        pytest.param(case, role, expected, id=f"{case.name}-{role}")
        for case in cases
        for role, expected in case.outcomes.items()
    ]


def _assert_refused(result: Result, expected: str) -> None:
    assert result.codes == [expected], result.errors
    message = result.errors[0]["message"]
    assert message and "Traceback" not in message
    # A refusal returns nothing of what was asked for.
    assert result.data is None or all(value is None for value in result.data.values())


async def _run_check(case: Case, env: Env, data: dict[str, Any]) -> None:
    if case.check is None:
        return
    outcome = case.check(env, data)
    if inspect.isawaitable(outcome):
        await outcome


def _pk(global_id: str) -> int:
    return parse_global_id(global_id)[1]


# --------------------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------------------


def _has(**expected: Any) -> Check:
    """The asked-for object has these values (the other fields are not checked)."""

    def check(env: Env, data: dict[str, Any]) -> None:
        (value,) = data.values()
        assert {key: value[key] for key in expected} == expected, value

    return check


def _source_with_last_scan(env: Env, data: dict[str, Any]) -> None:
    assert data["node"] == {
        "id": env.world.source_id,
        "name": "NAS",
        "lastScan": {"id": env.world.job_id},
    }


def _band_by_id(env: Env, data: dict[str, Any]) -> None:
    role = {"admin": "ADMIN", "member": "MEMBER", "member2": "MEMBER"}[env.role]
    assert data["band"] == {"id": env.world.band_id, "slug": "hum", "viewerRole": role}


def _every_node_visible(env: Env, data: dict[str, Any]) -> None:
    ids = _all_band_object_ids(env.world)
    assert [node and node["id"] for node in data["nodes"]] == ids


def _no_node_visible(env: Env, data: dict[str, Any]) -> None:
    # A stranger gets a null for each, and no error that would tell them apart.
    assert data["nodes"] == [None] * len(_all_band_object_ids(env.world))


def _all_band_object_ids(world: BandWorld) -> list[str]:
    return [
        world.band_id,
        world.track_id,
        world.version_id,
        world.session_id,
        world.admin_comment_id,
        world.job_id,
        world.source_id,
        world.user_ids["admin"],
        world.user_ids["member"],
    ]


def _viewer(env: Env, data: dict[str, Any]) -> None:
    handle = {"admin": "ada", "member": "ben", "member2": "cy", "stranger": "zed"}[env.role]
    bands = ["elsewhere"] if env.role == "stranger" else ["hum"]
    assert data["viewer"]["handle"] == handle
    assert [band["slug"] for band in data["viewer"]["bands"]["nodes"]] == bands


def _signed_out_viewer(env: Env, data: dict[str, Any]) -> None:
    assert data == {"viewer": None}


def _user_node(env: Env, data: dict[str, Any]) -> None:
    node = data["node"]
    assert node["handle"] == "ben"
    # The email is shown to its owner only.
    assert node["email"] == ("ben@example.org" if env.role == "member" else None)
    assert [band["slug"] for band in node["bands"]["nodes"]] == ["hum"]


QUERY_CASES = [
    Case(
        "band(id)",
        "query($id: ID!) { band(id: $id) { id slug viewerRole } }",
        lambda w: {"id": w.band_id},
        {**MEMBERS_MAY, "member2": OK},
        _band_by_id,
    ),
    Case(
        "band(slug)",
        'query { band(slug: "hum") { name members { totalCount } } }',
        lambda w: {},
        MEMBERS_MAY,
        _has(name="Hum", members={"totalCount": 3}),
    ),
    Case(
        "band(id)-contents",
        """query($id: ID!) {
          band(id: $id) {
            members { nodes { role user { handle } } }
            tracks { totalCount } sessions { totalCount } jobs { totalCount } sources { name }
          }
        }""",
        lambda w: {"id": w.band_id},
        MEMBERS_MAY,
        _has(tracks={"totalCount": 2}, sources=[{"name": "NAS"}], jobs={"totalCount": 1}),
    ),
    Case(
        "node(Band)",
        "query($id: ID!) { node(id: $id) { id ... on Band { slug } } }",
        lambda w: {"id": w.band_id},
        MEMBERS_MAY,
        _has(slug="hum"),
    ),
    Case(
        "node(Track)",
        "query($id: ID!) { node(id: $id) { id ... on Track { title band { slug } reactions { total } } } }",
        lambda w: {"id": w.track_id},
        MEMBERS_MAY,
        _has(title="Song", band={"slug": "hum"}, reactions={"total": 1}),
    ),
    Case(
        "node(TrackVersion)",
        """query($id: ID!) {
          node(id: $id) { id ... on TrackVersion { number track { title } comments { totalCount } } }
        }""",
        lambda w: {"id": w.version_id},
        MEMBERS_MAY,
        _has(number=1, track={"title": "Song"}, comments={"totalCount": 2}),
    ),
    Case(
        "node(RehearsalSession)",
        "query($id: ID!) { node(id: $id) { id ... on RehearsalSession { date label versionCount } } }",
        lambda w: {"id": w.session_id},
        MEMBERS_MAY,
        _has(date="2024-03-01", label="Friday", versionCount=2),
    ),
    Case(
        "node(Comment)",
        "query($id: ID!) { node(id: $id) { id ... on Comment { body author { handle } } } }",
        lambda w: {"id": w.admin_comment_id},
        MEMBERS_MAY,
        _has(body="Too fast", author={"handle": "ada"}),
    ),
    Case(
        "node(User)",
        """query($id: ID!) {
          node(id: $id) { id ... on User { handle email bands { nodes { slug } } } }
        }""",
        lambda w: {"id": w.user_ids["member"]},
        {**MEMBERS_MAY, "member2": OK},
        _user_node,
    ),
    Case(
        # Sharing no band with someone, even a band member cannot look them up.
        "node(User)-of-the-stranger",
        "query($id: ID!) { node(id: $id) { id ... on User { handle } } }",
        lambda w: {"id": w.user_ids["stranger"]},
        {"admin": NOT_FOUND, "member": NOT_FOUND, "stranger": OK, "signed_out": UNAUTHENTICATED},
    ),
    Case(
        "node(Job)",
        "query($id: ID!) { node(id: $id) { id ... on Job { kind status } } }",
        lambda w: {"id": w.job_id},
        MEMBERS_MAY,
        _has(kind="SCAN", status="SUCCEEDED"),
    ),
    Case(
        "node(Source)",
        "query($id: ID!) { node(id: $id) { id ... on Source { name lastScan { id } } } }",
        lambda w: {"id": w.source_id},
        MEMBERS_MAY,
        _source_with_last_scan,
    ),
    Case(
        "nodes",
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        lambda w: {"ids": _all_band_object_ids(w)},
        {
            "admin": OK,
            "member": OK,
            "stranger": OK,
            "signed_out": UNAUTHENTICATED,
        },
        lambda env, data: (
            _no_node_visible(env, data)
            if env.role == "stranger"
            else _every_node_visible(env, data)
        ),
    ),
    Case(
        "job(id)",
        "query($id: ID!) { job(id: $id) { id status } }",
        lambda w: {"id": w.job_id},
        MEMBERS_MAY,
        _has(status="SUCCEEDED"),
    ),
    Case(
        "viewer",
        "{ viewer { handle bands { nodes { slug } } } }",
        lambda w: {},
        {"admin": OK, "member": OK, "stranger": OK, "signed_out": OK},
        lambda env, data: (
            _signed_out_viewer(env, data) if env.role == "signed_out" else _viewer(env, data)
        ),
    ),
]


@pytest.mark.parametrize(("case", "role", "expected"), _params(QUERY_CASES))
async def test_query(client, session_factory, world, case: Case, role: str, expected: str):
    result = await gql(client, case.document, case.variables(world), token=world.tokens[role])
    if expected == OK:
        await _run_check(case, Env(client, session_factory, world, role), result.ok())
    else:
        _assert_refused(result, expected)


# --------------------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------------------

BAND_OF = "query($id: ID!) { band(id: $id) { name viewerRole members { nodes { role user { handle } } } } }"
TRACK_OF = (
    "query($id: ID!) { node(id: $id) { ... on Track { title bpm versions { totalCount } tags } } }"
)
COMMENT_OF = "query($id: ID!) { node(id: $id) { ... on Comment { body resolved editedAt } } }"


async def _joined(env: Env, data: dict[str, Any]) -> None:
    # Accepting again keeps one's role: an admin is not demoted by a member invite.
    expected = "ADMIN" if env.role == "admin" else "MEMBER"
    assert data["acceptInvite"]["viewerRole"] == expected
    band = (await env.ask(BAND_OF, {"id": env.world.band_id})).ok()["band"]
    handles = [member["user"]["handle"] for member in band["members"]["nodes"]]
    assert (
        handles == ["ada", "ben", "cy", "zed"] if env.role == "stranger" else ["ada", "ben", "cy"]
    )


async def _invite_works(env: Env, data: dict[str, Any]) -> None:
    token = data["createInvite"]
    joined = await env.ask(
        "mutation($t: String!) { acceptInvite(token: $t) { slug viewerRole } }",
        {"t": token},
        as_="stranger",
    )
    assert joined.ok()["acceptInvite"] == {"slug": "hum", "viewerRole": "MEMBER"}


async def _renamed(env: Env, data: dict[str, Any]) -> None:
    assert data["updateBand"]["name"] == "Renamed"
    band = (await env.ask(BAND_OF, {"id": env.world.band_id}, as_="member")).ok()["band"]
    assert band["name"] == "Renamed"


async def _cy_promoted(env: Env, data: dict[str, Any]) -> None:
    band = (await env.ask(BAND_OF, {"id": env.world.band_id}, as_="member2")).ok()["band"]
    assert band["viewerRole"] == "ADMIN"


async def _cy_gone(env: Env, data: dict[str, Any]) -> None:
    assert data["removeMember"] is True
    gone = await env.ask(BAND_OF, {"id": env.world.band_id}, as_="member2")
    assert gone.codes == [NOT_FOUND]
    band = (await env.ask(BAND_OF, {"id": env.world.band_id}, as_="admin")).ok()["band"]
    assert [member["user"]["handle"] for member in band["members"]["nodes"]] == ["ada", "ben"]


async def _track_created(env: Env, data: dict[str, Any]) -> None:
    assert data["createTrack"]["title"] == "New idea"
    track = (await env.ask(TRACK_OF, {"id": data["createTrack"]["id"]})).ok()["node"]
    assert track == {
        "title": "New idea",
        "bpm": None,
        "versions": {"totalCount": 0},
        "tags": ["rough"],
    }


async def _track_updated(env: Env, data: dict[str, Any]) -> None:
    track = (await env.ask(TRACK_OF, {"id": env.world.track_id}, as_="member2")).ok()["node"]
    assert track["title"] == "Renamed" and track["bpm"] == 120.0


async def _version_moved(env: Env, data: dict[str, Any]) -> None:
    assert data["moveVersion"]["track"]["id"] == env.world.other_track_id
    track = (await env.ask(TRACK_OF, {"id": env.world.other_track_id})).ok()["node"]
    assert track["versions"]["totalCount"] == 1


async def _tracks_merged(env: Env, data: dict[str, Any]) -> None:
    assert data["mergeTracks"]["id"] == env.world.track_id
    gone = await env.ask(TRACK_OF, {"id": env.world.other_track_id})
    assert gone.codes == [NOT_FOUND]


async def _session_updated(env: Env, data: dict[str, Any]) -> None:
    assert data["updateSession"] == {"label": "Sunday", "notes": "Louder"}


async def _comment_added(env: Env, data: dict[str, Any]) -> None:
    comment = (await env.ask(COMMENT_OF, {"id": data["addComment"]["id"]})).ok()["node"]
    assert comment["body"] == "Nice"


async def _reply_added(env: Env, data: dict[str, Any]) -> None:
    assert data["addComment"]["parent"] == {"id": env.world.admin_comment_id}


def _edited(comment: str) -> Check:
    async def check(env: Env, data: dict[str, Any]) -> None:
        node = (await env.ask(COMMENT_OF, {"id": getattr(env.world, comment)})).ok()["node"]
        assert node["body"] == "Edited" and node["editedAt"]

    return check


def _deleted(comment: str) -> Check:
    async def check(env: Env, data: dict[str, Any]) -> None:
        assert data["deleteComment"] is True
        gone = await env.ask(COMMENT_OF, {"id": getattr(env.world, comment)})
        assert gone.codes == [NOT_FOUND]

    return check


def _resolved(env: Env, data: dict[str, Any]) -> None:
    assert data["resolveComment"]["resolved"] is True


def _fired(env: Env, data: dict[str, Any]) -> None:
    assert {"kind": "FIRE", "count": 1, "viewerReacted": True} in data["react"]["counts"]


def _unliked(env: Env, data: dict[str, Any]) -> None:
    # ada had liked the track; ben had not, so his unreact changes nothing.
    assert data["unreact"]["total"] == (0 if env.role == "admin" else 1)


def _created_band(env: Env, data: dict[str, Any]) -> None:
    assert data["createBand"] == {"slug": "new-band", "viewerRole": "ADMIN"}


def _signed_in(env: Env, data: dict[str, Any]) -> None:
    (payload,) = data.values()
    assert payload["accessToken"]


MUTATION_CASES = [
    # Accounts and bands
    Case(
        "register",
        'mutation { register(input: {email: "new@example.org", password: "long enough", handle: "new"}) { accessToken } }',
        lambda w: {},
        {"signed_out": OK},
        _signed_in,
    ),
    Case(
        "login",
        'mutation { login(input: {email: "ada@example.org", password: "correct horse"}) { accessToken } }',
        lambda w: {},
        {"signed_out": OK},
        _signed_in,
    ),
    Case(
        "logoutEverywhere",
        "mutation { logoutEverywhere }",
        lambda w: {},
        {"admin": OK, "signed_out": UNAUTHENTICATED},
    ),
    Case(
        "createBand",
        'mutation { createBand(input: {name: "New Band"}) { slug viewerRole } }',
        lambda w: {},
        {"admin": OK, "member": OK, "stranger": OK, "signed_out": UNAUTHENTICATED},
        _created_band,
    ),
    Case(
        "createInvite",
        "mutation($b: ID!) { createInvite(bandId: $b) }",
        lambda w: {"b": w.band_id},
        ADMINS_MAY,
        _invite_works,
    ),
    Case(
        "createInvite-as-admin-role",
        "mutation($b: ID!) { createInvite(bandId: $b, role: ADMIN) }",
        lambda w: {"b": w.band_id},
        {"member": FORBIDDEN, "stranger": NOT_FOUND, "signed_out": UNAUTHENTICATED},
    ),
    Case(
        "acceptInvite",
        "mutation($t: String!) { acceptInvite(token: $t) { slug viewerRole } }",
        lambda w: {"t": w.invite_token},
        # Anyone holding the token may join: that is what an invite is for.
        {"admin": OK, "member": OK, "stranger": OK, "signed_out": UNAUTHENTICATED},
        _joined,
    ),
    Case(
        "updateBand",
        'mutation($id: ID!) { updateBand(id: $id, name: "Renamed") { name } }',
        lambda w: {"id": w.band_id},
        ADMINS_MAY,
        _renamed,
    ),
    Case(
        "setMemberRole",
        "mutation($b: ID!, $u: ID!) { setMemberRole(bandId: $b, userId: $u, role: ADMIN) { id } }",
        lambda w: {"b": w.band_id, "u": w.user_ids["member2"]},
        ADMINS_MAY,
        _cy_promoted,
    ),
    Case(
        "setMemberRole-promote-oneself",
        "mutation($b: ID!, $u: ID!) { setMemberRole(bandId: $b, userId: $u, role: ADMIN) { id } }",
        lambda w: {"b": w.band_id, "u": w.user_ids["member"]},
        {"member": FORBIDDEN},
    ),
    Case(
        "setMemberRole-stranger-promotes-oneself",
        "mutation($b: ID!, $u: ID!) { setMemberRole(bandId: $b, userId: $u, role: ADMIN) { id } }",
        lambda w: {"b": w.band_id, "u": w.user_ids["stranger"]},
        {"stranger": NOT_FOUND},
    ),
    Case(
        "setMemberRole-demote-admin",
        "mutation($b: ID!, $u: ID!) { setMemberRole(bandId: $b, userId: $u, role: MEMBER) { id } }",
        lambda w: {"b": w.band_id, "u": w.user_ids["admin"]},
        {"member": FORBIDDEN, "stranger": NOT_FOUND},
    ),
    Case(
        # Removing someone else is for admins; cy removing cy is leaving.
        "removeMember",
        "mutation($b: ID!, $u: ID!) { removeMember(bandId: $b, userId: $u) }",
        lambda w: {"b": w.band_id, "u": w.user_ids["member2"]},
        {**ADMINS_MAY, "member2": OK},
        _cy_gone,
    ),
    Case(
        "removeMember-the-admin",
        "mutation($b: ID!, $u: ID!) { removeMember(bandId: $b, userId: $u) }",
        lambda w: {"b": w.band_id, "u": w.user_ids["admin"]},
        {"member": FORBIDDEN, "stranger": NOT_FOUND},
    ),
    Case(
        "removeMember-stranger-leaves",
        "mutation($b: ID!, $u: ID!) { removeMember(bandId: $b, userId: $u) }",
        lambda w: {"b": w.band_id, "u": w.user_ids["stranger"]},
        {"stranger": NOT_FOUND},
    ),
    # Library
    Case(
        "createTrack",
        'mutation($b: ID!) { createTrack(bandId: $b, title: "New idea", tags: ["rough"]) { id title } }',
        lambda w: {"b": w.band_id},
        MEMBERS_MAY,
        _track_created,
    ),
    Case(
        "updateTrack",
        'mutation($id: ID!) { updateTrack(id: $id, title: "Renamed", bpm: 120) { title bpm } }',
        lambda w: {"id": w.track_id},
        MEMBERS_MAY,
        _track_updated,
    ),
    Case(
        "moveVersion",
        "mutation($v: ID!, $t: ID!) { moveVersion(versionId: $v, trackId: $t) { id track { id } } }",
        lambda w: {"v": w.version_id, "t": w.other_track_id},
        MEMBERS_MAY,
        _version_moved,
    ),
    Case(
        # Each sees only one side: the stranger the target, a member the take.
        "moveVersion-to-the-stranger's-track",
        "mutation($v: ID!, $t: ID!) { moveVersion(versionId: $v, trackId: $t) { id } }",
        lambda w: {"v": w.version_id, "t": w.foreign_track_id},
        {"admin": NOT_FOUND, "member": NOT_FOUND, "stranger": NOT_FOUND},
    ),
    Case(
        "moveVersion-of-the-stranger's-take",
        "mutation($v: ID!, $t: ID!) { moveVersion(versionId: $v, trackId: $t) { id } }",
        lambda w: {"v": w.foreign_version_id, "t": w.track_id},
        {"admin": NOT_FOUND, "stranger": NOT_FOUND},
    ),
    Case(
        "mergeTracks",
        "mutation($s: ID!, $t: ID!) { mergeTracks(sourceTrackId: $s, targetTrackId: $t) { id } }",
        lambda w: {"s": w.other_track_id, "t": w.track_id},
        MEMBERS_MAY,
        _tracks_merged,
    ),
    Case(
        "mergeTracks-across-bands",
        "mutation($s: ID!, $t: ID!) { mergeTracks(sourceTrackId: $s, targetTrackId: $t) { id } }",
        lambda w: {"s": w.foreign_track_id, "t": w.track_id},
        {"admin": NOT_FOUND, "stranger": NOT_FOUND},
    ),
    Case(
        "updateSession",
        'mutation($id: ID!) { updateSession(id: $id, label: "Sunday", notes: "Louder") { label notes } }',
        lambda w: {"id": w.session_id},
        MEMBERS_MAY,
        _session_updated,
    ),
    # Feedback
    Case(
        "addComment",
        'mutation($v: ID!) { addComment(input: {versionId: $v, body: "Nice", atMs: 5}) { id } }',
        lambda w: {"v": w.version_id},
        MEMBERS_MAY,
        _comment_added,
    ),
    Case(
        "addComment-reply",
        """mutation($v: ID!, $p: ID!) {
          addComment(input: {versionId: $v, body: "Yes", parentId: $p}) { parent { id } }
        }""",
        lambda w: {"v": w.version_id, "p": w.admin_comment_id},
        {**MEMBERS_MAY, "member2": OK},
        _reply_added,
    ),
    Case(
        "editComment-of-the-admin",
        'mutation($id: ID!) { editComment(id: $id, body: "Edited") { body } }',
        lambda w: {"id": w.admin_comment_id},
        {"admin": OK, "member": FORBIDDEN, "stranger": NOT_FOUND, "signed_out": UNAUTHENTICATED},
        _edited("admin_comment_id"),
    ),
    Case(
        "editComment-of-a-member",
        'mutation($id: ID!) { editComment(id: $id, body: "Edited") { body } }',
        lambda w: {"id": w.member_comment_id},
        {"member": OK, "admin": OK, "member2": FORBIDDEN, "stranger": NOT_FOUND},
        _edited("member_comment_id"),
    ),
    Case(
        "deleteComment-of-the-admin",
        "mutation($id: ID!) { deleteComment(id: $id) }",
        lambda w: {"id": w.admin_comment_id},
        {"admin": OK, "member": FORBIDDEN, "stranger": NOT_FOUND, "signed_out": UNAUTHENTICATED},
        _deleted("admin_comment_id"),
    ),
    Case(
        "deleteComment-of-a-member",
        "mutation($id: ID!) { deleteComment(id: $id) }",
        lambda w: {"id": w.member_comment_id},
        {"member": OK, "admin": OK, "member2": FORBIDDEN, "stranger": NOT_FOUND},
        _deleted("member_comment_id"),
    ),
    Case(
        "resolveComment-of-the-admin",
        "mutation($id: ID!) { resolveComment(id: $id, resolved: true) { resolved } }",
        lambda w: {"id": w.admin_comment_id},
        {"admin": OK, "member": FORBIDDEN, "stranger": NOT_FOUND, "signed_out": UNAUTHENTICATED},
        _resolved,
    ),
    Case(
        "resolveComment-of-a-member",
        "mutation($id: ID!) { resolveComment(id: $id, resolved: true) { resolved } }",
        lambda w: {"id": w.member_comment_id},
        {"member": OK, "admin": OK, "member2": FORBIDDEN, "stranger": NOT_FOUND},
        _resolved,
    ),
    Case(
        "react-to-a-track",
        "mutation($t: ID!) { react(targetId: $t, kind: FIRE) { counts { kind count viewerReacted } } }",
        lambda w: {"t": w.track_id},
        MEMBERS_MAY,
        _fired,
    ),
    Case(
        "react-to-a-version",
        "mutation($t: ID!) { react(targetId: $t, kind: FIRE) { counts { kind count viewerReacted } } }",
        lambda w: {"t": w.version_id},
        MEMBERS_MAY,
        _fired,
    ),
    Case(
        "react-to-a-comment",
        "mutation($t: ID!) { react(targetId: $t, kind: FIRE) { counts { kind count viewerReacted } } }",
        lambda w: {"t": w.admin_comment_id},
        MEMBERS_MAY,
        _fired,
    ),
    Case(
        "unreact",
        "mutation($t: ID!) { unreact(targetId: $t, kind: LIKE) { total } }",
        lambda w: {"t": w.track_id},
        MEMBERS_MAY,
        _unliked,
    ),
    Case(
        "unreact-on-a-comment",
        "mutation($t: ID!) { unreact(targetId: $t, kind: LIKE) { total } }",
        lambda w: {"t": w.admin_comment_id},
        {"stranger": NOT_FOUND, "signed_out": UNAUTHENTICATED},
    ),
]


@pytest.mark.parametrize(("case", "role", "expected"), _params(MUTATION_CASES))
async def test_mutation(client, session_factory, world, case: Case, role: str, expected: str):
    before = await database_snapshot(session_factory)
    result = await gql(client, case.document, case.variables(world), token=world.tokens[role])
    if expected == OK:
        await _run_check(case, Env(client, session_factory, world, role), result.ok())
    else:
        _assert_refused(result, expected)
        assert await database_snapshot(session_factory) == before


# --------------------------------------------------------------------------------------
# A stranger cannot tell a hidden object from a missing one
# --------------------------------------------------------------------------------------

HIDDEN_OR_MISSING = [
    ("node", "query($id: ID!) { node(id: $id) { id } }", "Track", "track_id"),
    ("band", "query($id: ID!) { band(id: $id) { id } }", "Band", "band_id"),
    ("job", "query($id: ID!) { job(id: $id) { id } }", "Job", "job_id"),
    (
        "updateTrack",
        'mutation($id: ID!) { updateTrack(id: $id, title: "x") { id } }',
        "Track",
        "track_id",
    ),
    (
        "updateSession",
        'mutation($id: ID!) { updateSession(id: $id, label: "x") { id } }',
        "RehearsalSession",
        "session_id",
    ),
    (
        "addComment",
        'mutation($id: ID!) { addComment(input: {versionId: $id, body: "x"}) { id } }',
        "TrackVersion",
        "version_id",
    ),
    (
        "editComment",
        'mutation($id: ID!) { editComment(id: $id, body: "x") { id } }',
        "Comment",
        "admin_comment_id",
    ),
    (
        "deleteComment",
        "mutation($id: ID!) { deleteComment(id: $id) }",
        "Comment",
        "admin_comment_id",
    ),
    (
        "react",
        "mutation($id: ID!) { react(targetId: $id, kind: LIKE) { total } }",
        "Track",
        "track_id",
    ),
    ("createInvite", "mutation($id: ID!) { createInvite(bandId: $id) }", "Band", "band_id"),
    (
        "updateBand",
        'mutation($id: ID!) { updateBand(id: $id, name: "x") { id } }',
        "Band",
        "band_id",
    ),
]


@pytest.mark.parametrize(
    ("document", "type_name", "attribute"),
    [pytest.param(*case[1:], id=case[0]) for case in HIDDEN_OR_MISSING],
)
async def test_a_stranger_cannot_tell_hidden_from_missing(
    client, world, document: str, type_name: str, attribute: str
):
    token = world.tokens["stranger"]
    hidden = await gql(client, document, {"id": getattr(world, attribute)}, token=token)
    missing_id = to_global_id(type_name, _pk(getattr(world, attribute)) + 1000)
    missing = await gql(client, document, {"id": missing_id}, token=token)
    assert hidden.codes == missing.codes == [NOT_FOUND]
    assert hidden.errors[0]["message"] == missing.errors[0]["message"]
    assert hidden.errors[0]["extensions"] == missing.errors[0]["extensions"]


async def test_a_member_who_left_becomes_a_stranger(client, session_factory, world):
    """Access is read per request: after leaving, ben is refused like any stranger."""
    member = world.tokens["member"]
    leave = "mutation($b: ID!, $u: ID!) { removeMember(bandId: $b, userId: $u) }"
    assert (
        await gql(client, leave, {"b": world.band_id, "u": world.user_ids["member"]}, token=member)
    ).ok()
    for document, variables in (
        ("query($id: ID!) { node(id: $id) { id } }", {"id": world.track_id}),
        ("query($id: ID!) { band(id: $id) { id } }", {"id": world.band_id}),
        (
            'mutation($id: ID!) { editComment(id: $id, body: "x") { id } }',
            {"id": world.member_comment_id},
        ),
    ):
        result = await gql(client, document, variables, token=member)
        assert result.codes == [NOT_FOUND], document
    nodes = await gql(
        client,
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        {"ids": [world.band_id]},
        token=member,
    )
    assert nodes.ok()["nodes"] == [None]
