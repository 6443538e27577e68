"""Bad input gets a clear, coded error naming the field, and changes nothing.

Every case runs against the world of tests.factories.build_band_world and compares a
snapshot of every table before and after the refused request."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from backend.bands.models import BandInvite
from backend.core.database import utcnow
from backend.graphql.relay import to_global_id
from tests.factories import (
    BandWorld,
    build_band_world,
    cheap_password_hashing,
    database_snapshot,
)
from tests.graphql_client import REGISTER, Result, gql

# Words that only turn up in a message when an exception's text leaked out unedited.
LEAKS = (
    "Traceback",
    'File "',
    "sqlalchemy",
    "asyncpg",
    "sqlite3",
    "psycopg",
    "NoneType",
    "object has no attribute",
    "invalid literal",
    "(Background on this error",
)
MEGABYTE = "x" * 1_000_000


@pytest.fixture
async def world(client, session_factory, monkeypatch) -> BandWorld:
    cheap_password_hashing(monkeypatch)
    return await build_band_world(client, session_factory)


def assert_clear_error(
    result: Result, code: str, *, field: str | None = None, reason: str | None = None
) -> None:
    assert result.codes == [code], result.errors
    error = result.errors[0]
    message = error["message"]
    assert isinstance(message, str) and message.strip(), error
    assert len(message) < 1000, message[:200]
    for leak in LEAKS:
        assert leak not in message, message
    extensions = error["extensions"]
    assert set(extensions) <= {"code", "field", "reason"}, extensions
    if field is not None:
        assert extensions.get("field") == field, error
    if reason is not None:
        assert extensions.get("reason") == reason, error
    assert result.data is None or all(value is None for value in result.data.values())


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@dataclass(frozen=True)
class Case:
    name: str
    document: str
    variables: Callable[[BandWorld], dict[str, Any]]
    code: str
    field: str | None = None
    reason: str | None = None
    as_: str = "admin"


BAD_USER_INPUT = "BAD_USER_INPUT"
NOT_FOUND = "NOT_FOUND"

CASES = [
    # ---------------------------------------------------------------- the document
    Case("malformed query", "{ viewer { handle ", lambda w: {}, "GRAPHQL_PARSE_FAILED"),
    Case(
        "malformed mutation",
        "mutation { createBand(input: {name: }) { id } }",
        lambda w: {},
        "GRAPHQL_PARSE_FAILED",
    ),
    Case("unknown field", "{ viewer { handle nope } }", lambda w: {}, "GRAPHQL_VALIDATION_FAILED"),
    Case(
        "unknown mutation",
        "mutation { dropBand { id } }",
        lambda w: {},
        "GRAPHQL_VALIDATION_FAILED",
    ),
    Case(
        "unknown argument",
        'mutation($b: ID!) { createTrack(bandId: $b, title: "T", colour: "red") { id } }',
        lambda w: {"b": w.band_id},
        "GRAPHQL_VALIDATION_FAILED",
    ),
    Case(
        "literal of the wrong type",
        "mutation($b: ID!) { createTrack(bandId: $b, title: 5) { id } }",
        lambda w: {"b": w.band_id},
        "GRAPHQL_VALIDATION_FAILED",
    ),
    # ---------------------------------------------------------------- variables
    Case(
        "Int variable given a string",
        "query($id: ID!, $n: Int) { band(id: $id) { tracks(first: $n) { totalCount } } }",
        lambda w: {"id": w.band_id, "n": "ten"},
        BAD_USER_INPUT,
    ),
    Case(
        "enum variable given an unknown value",
        'mutation($b: ID!, $s: TrackStatus!) { createTrack(bandId: $b, title: "T", status: $s) { id } }',
        lambda w: {"b": w.band_id, "s": "FINISHED"},
        BAD_USER_INPUT,
    ),
    Case(
        "required variable missing",
        'mutation($b: ID!) { createTrack(bandId: $b, title: "T") { id } }',
        lambda w: {},
        BAD_USER_INPUT,
    ),
    Case(
        "required variable null",
        'mutation($b: ID!) { createTrack(bandId: $b, title: "T") { id } }',
        lambda w: {"b": None},
        BAD_USER_INPUT,
    ),
    Case(
        "String variable given an object",
        "mutation($b: ID!, $t: String!) { createTrack(bandId: $b, title: $t) { id } }",
        lambda w: {"b": w.band_id, "t": {"title": "T"}},
        BAD_USER_INPUT,
    ),
    Case(
        "input object with an unknown field",
        "mutation($i: AddCommentInput!) { addComment(input: $i) { id } }",
        lambda w: {"i": {"versionId": w.version_id, "body": "Hi", "colour": "red"}},
        BAD_USER_INPUT,
    ),
    Case(
        "Int beyond 32 bits",
        "mutation($i: AddCommentInput!) { addComment(input: $i) { id } }",
        lambda w: {"i": {"versionId": w.version_id, "body": "Hi", "atMs": 2**31}},
        BAD_USER_INPUT,
    ),
    Case(
        "Date variable that is no date",
        "query($id: ID!, $d: Date) { band(id: $id) { sessions(from: $d) { totalCount } } }",
        lambda w: {"id": w.band_id, "d": "2024-13-45"},
        BAD_USER_INPUT,
    ),
    # ---------------------------------------------------------------- ids
    Case(
        "id that is not base64",
        "query($id: ID!) { node(id: $id) { id } }",
        lambda w: {"id": "not an id!"},
        BAD_USER_INPUT,
        "id",
    ),
    Case(
        "id with a non-numeric key",
        "query($id: ID!) { node(id: $id) { id } }",
        lambda w: {"id": _b64("Track:abc")},
        BAD_USER_INPUT,
        "id",
    ),
    Case(
        "id with a negative key",
        "query($id: ID!) { node(id: $id) { id } }",
        lambda w: {"id": _b64("Track:-3")},
        BAD_USER_INPUT,
        "id",
    ),
    Case(
        "id with a key past 64 bits",
        "query($id: ID!) { node(id: $id) { id } }",
        lambda w: {"id": _b64(f"Track:{2**64}")},
        BAD_USER_INPUT,
        "id",
    ),
    Case(
        "id that is not ASCII",
        "query($id: ID!) { node(id: $id) { id } }",
        lambda w: {"id": "Trück:1"},
        BAD_USER_INPUT,
        "id",
    ),
    Case(
        "garbage among nodes",
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        lambda w: {"ids": [w.track_id, "garbage"]},
        BAD_USER_INPUT,
        "ids",
    ),
    Case(
        "Track id as band(id)",
        "query($id: ID!) { band(id: $id) { id } }",
        lambda w: {"id": w.track_id},
        BAD_USER_INPUT,
        "id",
    ),
    Case(
        "Band id as trackId",
        "mutation($v: ID!, $t: ID!) { moveVersion(versionId: $v, trackId: $t) { id } }",
        lambda w: {"v": w.version_id, "t": w.band_id},
        BAD_USER_INPUT,
        "trackId",
    ),
    Case(
        "Track id as versionId",
        "mutation($v: ID!, $t: ID!) { moveVersion(versionId: $v, trackId: $t) { id } }",
        lambda w: {"v": w.track_id, "t": w.other_track_id},
        BAD_USER_INPUT,
        "versionId",
    ),
    Case(
        "Track id as bandId",
        'mutation($b: ID!) { createTrack(bandId: $b, title: "T") { id } }',
        lambda w: {"b": w.track_id},
        BAD_USER_INPUT,
        "bandId",
    ),
    Case(
        "Band id as userId",
        "mutation($b: ID!, $u: ID!) { removeMember(bandId: $b, userId: $u) }",
        lambda w: {"b": w.band_id, "u": w.band_id},
        BAD_USER_INPUT,
        "userId",
    ),
    Case(
        "Track id as sourceTrackId's partner: a Session id as targetTrackId",
        "mutation($s: ID!, $t: ID!) { mergeTracks(sourceTrackId: $s, targetTrackId: $t) { id } }",
        lambda w: {"s": w.other_track_id, "t": w.session_id},
        BAD_USER_INPUT,
        "targetTrackId",
    ),
    Case(
        "Track id as versionId of a comment",
        'mutation($v: ID!) { addComment(input: {versionId: $v, body: "Hi"}) { id } }',
        lambda w: {"v": w.track_id},
        BAD_USER_INPUT,
        "versionId",
    ),
    Case(
        "TrackVersion id as parentId",
        'mutation($v: ID!) { addComment(input: {versionId: $v, body: "Hi", parentId: $v}) { id } }',
        lambda w: {"v": w.version_id},
        BAD_USER_INPUT,
        "parentId",
    ),
    Case(
        "Band id as targetId of a reaction",
        "mutation($t: ID!) { react(targetId: $t, kind: LIKE) { total } }",
        lambda w: {"t": w.band_id},
        BAD_USER_INPUT,
        "targetId",
    ),
    Case(
        "Comment id as updateSession id",
        'mutation($id: ID!) { updateSession(id: $id, label: "x") { id } }',
        lambda w: {"id": w.admin_comment_id},
        BAD_USER_INPUT,
        "id",
    ),
    Case(
        "Track id as job(id)",
        "query($id: ID!) { job(id: $id) { id } }",
        lambda w: {"id": w.track_id},
        BAD_USER_INPUT,
        "id",
    ),
    Case(
        "Band id as a filter's sessionId",
        "query($id: ID!) { band(id: $id) { tracks(filter: {sessionId: $id}) { totalCount } } }",
        lambda w: {"id": w.band_id},
        BAD_USER_INPUT,
        "filter.sessionId",
    ),
    Case(
        "band() with neither id nor slug",
        "{ band { id } }",
        lambda w: {},
        BAD_USER_INPUT,
        "id",
    ),
    Case(
        "more than 100 nodes",
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        lambda w: {"ids": [w.track_id] * 101},
        BAD_USER_INPUT,
        "ids",
    ),
    # ---------------------------------------------------------------- empty and blank text
    *(
        Case(
            f"band name {blank!r}",
            "mutation($n: String!) { createBand(input: {name: $n}) { id } }",
            lambda w, blank=blank: {"n": blank},
            BAD_USER_INPUT,
            "name",
        )
        for blank in ("", "   ", "\t\n ", "\x00\x07")
    ),
    Case(
        "band slug of blanks",
        'mutation { createBand(input: {name: "Fine", slug: "   "}) { id } }',
        lambda w: {},
        BAD_USER_INPUT,
        "slug",
    ),
    Case(
        "band slug of punctuation",
        'mutation { createBand(input: {name: "Fine", slug: "--!!--"}) { id } }',
        lambda w: {},
        BAD_USER_INPUT,
        "slug",
    ),
    Case(
        "band name that makes no slug",
        'mutation { createBand(input: {name: "!!!"}) { id } }',
        lambda w: {},
        BAD_USER_INPUT,
        "slug",
    ),
    Case(
        "renaming a band to blanks",
        'mutation($id: ID!) { updateBand(id: $id, name: "  ") { id } }',
        lambda w: {"id": w.band_id},
        BAD_USER_INPUT,
        "name",
    ),
    *(
        Case(
            f"track title {blank!r}",
            "mutation($b: ID!, $t: String!) { createTrack(bandId: $b, title: $t) { id } }",
            lambda w, blank=blank: {"b": w.band_id, "t": blank},
            BAD_USER_INPUT,
            "title",
        )
        for blank in ("", "  ", "\n")
    ),
    Case(
        "retitling a track to blanks",
        'mutation($id: ID!) { updateTrack(id: $id, title: " ") { id } }',
        lambda w: {"id": w.track_id},
        BAD_USER_INPUT,
        "title",
    ),
    Case(
        "a blank tag",
        'mutation($id: ID!) { updateTrack(id: $id, tags: ["rock", " "]) { id } }',
        lambda w: {"id": w.track_id},
        BAD_USER_INPUT,
        "tags",
    ),
    *(
        Case(
            f"comment body {blank!r}",
            "mutation($v: ID!, $b: String!) { addComment(input: {versionId: $v, body: $b}) { id } }",
            lambda w, blank=blank: {"v": w.version_id, "b": blank},
            BAD_USER_INPUT,
            "body",
        )
        for blank in ("", "   ", "\n\t")
    ),
    Case(
        "editing a comment to blanks",
        'mutation($id: ID!) { editComment(id: $id, body: "  ") { id } }',
        lambda w: {"id": w.admin_comment_id},
        BAD_USER_INPUT,
        "body",
    ),
    # ---------------------------------------------------------------- huge text
    Case(
        "a 1 MB comment",
        "mutation($v: ID!, $b: String!) { addComment(input: {versionId: $v, body: $b}) { id } }",
        lambda w: {"v": w.version_id, "b": MEGABYTE},
        BAD_USER_INPUT,
        "body",
    ),
    Case(
        "editing a comment to 1 MB",
        "mutation($id: ID!, $b: String!) { editComment(id: $id, body: $b) { id } }",
        lambda w: {"id": w.admin_comment_id, "b": MEGABYTE},
        BAD_USER_INPUT,
        "body",
    ),
    Case(
        "a 10k-character band name",
        "mutation($n: String!) { createBand(input: {name: $n}) { id } }",
        lambda w: {"n": "n" * 10_000},
        BAD_USER_INPUT,
        "name",
    ),
    Case(
        "renaming a band to 10k characters",
        "mutation($id: ID!, $n: String!) { updateBand(id: $id, name: $n) { id } }",
        lambda w: {"id": w.band_id, "n": "n" * 10_000},
        BAD_USER_INPUT,
        "name",
    ),
    Case(
        "a 10k-character slug",
        'mutation($s: String!) { createBand(input: {name: "Fine", slug: $s}) { id } }',
        lambda w: {"s": "s" * 10_000},
        BAD_USER_INPUT,
        "slug",
    ),
    Case(
        "a 10k-character track title",
        "mutation($b: ID!, $t: String!) { createTrack(bandId: $b, title: $t) { id } }",
        lambda w: {"b": w.band_id, "t": "t" * 10_000},
        BAD_USER_INPUT,
        "title",
    ),
    Case(
        "1 MB of track notes",
        "mutation($id: ID!, $n: String!) { updateTrack(id: $id, notes: $n) { id } }",
        lambda w: {"id": w.track_id, "n": MEGABYTE},
        BAD_USER_INPUT,
        "notes",
    ),
    Case(
        "a 10k-character key",
        "mutation($id: ID!, $k: String!) { updateTrack(id: $id, key: $k) { id } }",
        lambda w: {"id": w.track_id, "k": "k" * 10_000},
        BAD_USER_INPUT,
        "key",
    ),
    Case(
        "a 10k-character tag",
        "mutation($id: ID!, $t: String!) { updateTrack(id: $id, tags: [$t]) { id } }",
        lambda w: {"id": w.track_id, "t": "t" * 10_000},
        BAD_USER_INPUT,
        "tags",
    ),
    Case(
        "too many tags",
        "mutation($id: ID!, $t: [String!]) { updateTrack(id: $id, tags: $t) { id } }",
        lambda w: {"id": w.track_id, "t": [f"tag{n}" for n in range(21)]},
        BAD_USER_INPUT,
        "tags",
    ),
    Case(
        "a 10k-character session label",
        "mutation($id: ID!, $l: String!) { updateSession(id: $id, label: $l) { id } }",
        lambda w: {"id": w.session_id, "l": "l" * 10_000},
        BAD_USER_INPUT,
        "label",
    ),
    Case(
        "1 MB of session notes",
        "mutation($id: ID!, $n: String!) { updateSession(id: $id, notes: $n) { id } }",
        lambda w: {"id": w.session_id, "n": MEGABYTE},
        BAD_USER_INPUT,
        "notes",
    ),
    Case(
        "a 1 MB invite token",
        "mutation($t: String!) { acceptInvite(token: $t) { id } }",
        lambda w: {"t": MEGABYTE},
        BAD_USER_INPUT,
        "token",
        as_="stranger",
    ),
    # ---------------------------------------------------------------- numbers
    *(
        Case(
            f"bpm {bpm}",
            "mutation($id: ID!, $bpm: Float) { updateTrack(id: $id, bpm: $bpm) { id } }",
            lambda w, bpm=bpm: {"id": w.track_id, "bpm": bpm},
            BAD_USER_INPUT,
            "bpm",
        )
        for bpm in (0, -120, 401, 1e308)
    ),
    # ---------------------------------------------------------------- comment spans
    Case(
        "atMs negative",
        'mutation($v: ID!) { addComment(input: {versionId: $v, body: "Hi", atMs: -1}) { id } }',
        lambda w: {"v": w.version_id},
        BAD_USER_INPUT,
        "atMs",
    ),
    Case(
        "endMs negative",
        'mutation($v: ID!) { addComment(input: {versionId: $v, body: "Hi", atMs: 5, endMs: -1}) { id } }',
        lambda w: {"v": w.version_id},
        BAD_USER_INPUT,
        "endMs",
    ),
    Case(
        "endMs before atMs",
        'mutation($v: ID!) { addComment(input: {versionId: $v, body: "Hi", atMs: 5000, endMs: 4000}) { id } }',
        lambda w: {"v": w.version_id},
        BAD_USER_INPUT,
        "endMs",
    ),
    Case(
        "endMs equal to atMs",
        'mutation($v: ID!) { addComment(input: {versionId: $v, body: "Hi", atMs: 5000, endMs: 5000}) { id } }',
        lambda w: {"v": w.version_id},
        BAD_USER_INPUT,
        "endMs",
    ),
    Case(
        "endMs without atMs",
        'mutation($v: ID!) { addComment(input: {versionId: $v, body: "Hi", endMs: 5000}) { id } }',
        lambda w: {"v": w.version_id},
        BAD_USER_INPUT,
        "endMs",
    ),
    Case(
        "atMs past the end of the take",
        'mutation($v: ID!) { addComment(input: {versionId: $v, body: "Hi", atMs: 180001}) { id } }',
        lambda w: {"v": w.version_id},
        BAD_USER_INPUT,
        "atMs",
    ),
    Case(
        "replying to a comment on another version",
        'mutation($v: ID!, $p: ID!) { addComment(input: {versionId: $v, body: "Hi", parentId: $p}) { id } }',
        lambda w: {"v": w.second_version_id, "p": w.admin_comment_id},
        BAD_USER_INPUT,
        "parentId",
    ),
    Case(
        "replying to a comment that does not exist",
        'mutation($v: ID!, $p: ID!) { addComment(input: {versionId: $v, body: "Hi", parentId: $p}) { id } }',
        lambda w: {"v": w.version_id, "p": to_global_id("Comment", 9999)},
        BAD_USER_INPUT,
        "parentId",
    ),
    # ---------------------------------------------------------------- tracks and versions
    Case(
        "moving a take to a track of another band",
        "mutation($v: ID!, $t: ID!) { moveVersion(versionId: $v, trackId: $t) { id } }",
        lambda w: {"v": w.version_id, "t": w.foreign_track_id},
        NOT_FOUND,
    ),
    Case(
        "merging a track into itself",
        "mutation($t: ID!) { mergeTracks(sourceTrackId: $t, targetTrackId: $t) { id } }",
        lambda w: {"t": w.track_id},
        BAD_USER_INPUT,
        "targetTrackId",
    ),
    Case(
        "a track title that is taken",
        'mutation($b: ID!) { createTrack(bandId: $b, title: " SONG ") { id } }',
        lambda w: {"b": w.band_id},
        BAD_USER_INPUT,
        "title",
        "ALREADY_EXISTS",
    ),
    Case(
        "retitling a track to a taken title",
        'mutation($id: ID!) { updateTrack(id: $id, title: "sketch") { id } }',
        lambda w: {"id": w.track_id},
        BAD_USER_INPUT,
        "title",
        "ALREADY_EXISTS",
    ),
    # ---------------------------------------------------------------- bands and accounts
    Case(
        "a band slug that is taken",
        'mutation { createBand(input: {name: "Other", slug: "hum"}) { id } }',
        lambda w: {},
        BAD_USER_INPUT,
        "slug",
        "ALREADY_EXISTS",
    ),
    Case(
        "a band slug that is taken, in capitals",
        'mutation { createBand(input: {name: "Other", slug: " HUM "}) { id } }',
        lambda w: {},
        BAD_USER_INPUT,
        "slug",
        "ALREADY_EXISTS",
    ),
    Case(
        "a band name whose slug is taken",
        'mutation { createBand(input: {name: "Hum"}) { id } }',
        lambda w: {},
        BAD_USER_INPUT,
        "slug",
        "ALREADY_EXISTS",
    ),
    Case(
        "an invite token that does not exist",
        'mutation { acceptInvite(token: "made-up") { id } }',
        lambda w: {},
        BAD_USER_INPUT,
        "token",
        as_="stranger",
    ),
    *(
        Case(
            f"registering with {what}",
            REGISTER,
            lambda w, given=given: {
                "input": {
                    "email": "new@example.org",
                    "password": "long enough",
                    "handle": "newbie",
                    **given,
                }
            },
            BAD_USER_INPUT,
            field,
            reason,
            as_="signed_out",
        )
        for what, given, field, reason in (
            ("a taken email", {"email": "ADA@example.org"}, "email", "ALREADY_EXISTS"),
            ("a taken handle", {"handle": "Ada"}, "handle", "ALREADY_EXISTS"),
            ("an invalid email", {"email": "ada.example.org"}, "email", None),
            ("an email with a space", {"email": "a da@example.org"}, "email", None),
            ("an empty email", {"email": ""}, "email", None),
            ("a 10k-character email", {"email": "e" * 10_000 + "@example.org"}, "email", None),
            ("a short password", {"password": "short"}, "password", None),
            ("an empty password", {"password": ""}, "password", None),
            ("a 1 MB password", {"password": MEGABYTE}, "password", None),
            ("an empty handle", {"handle": ""}, "handle", None),
            ("a handle with spaces", {"handle": "a b"}, "handle", None),
            ("a 10k-character handle", {"handle": "h" * 10_000}, "handle", None),
            ("a 10k-character display name", {"displayName": "d" * 10_000}, "displayName", None),
        )
    ),
    # ---------------------------------------------------------------- NUL characters
    # PostgreSQL text cannot hold NUL; such input must be refused, not crash the query.
    Case(
        "an email with a NUL",
        REGISTER,
        lambda w: {
            "input": {"email": "nul\x00@example.org", "password": "long enough", "handle": "nul"}
        },
        BAD_USER_INPUT,
        "email",
        as_="signed_out",
    ),
    Case(
        "a handle with a NUL",
        REGISTER,
        lambda w: {
            "input": {"email": "nul@example.org", "password": "long enough", "handle": "n\x00l"}
        },
        BAD_USER_INPUT,
        "handle",
        as_="signed_out",
    ),
    Case(
        "signing in with a NUL in the email",
        'mutation { login(input: {email: "ada\\u0000@example.org", password: "correct horse"}) { accessToken } }',
        lambda w: {},
        "UNAUTHENTICATED",
        as_="signed_out",
    ),
    Case(
        "a band slug with a NUL",
        "query($s: String!) { band(slug: $s) { id } }",
        lambda w: {"s": "hum\x00"},
        NOT_FOUND,
    ),
    Case(
        "a 10k-character band slug",
        "query($s: String!) { band(slug: $s) { id } }",
        lambda w: {"s": "h" * 10_000},
        NOT_FOUND,
    ),
    Case(
        "an invite token with a NUL",
        "mutation($t: String!) { acceptInvite(token: $t) { id } }",
        lambda w: {"t": w.invite_token + "\x00"},
        BAD_USER_INPUT,
        "token",
        as_="stranger",
    ),
    *(
        Case(
            f"a track filter's {name} longer than anything stored",
            "query($id: ID!, $f: TrackFilter) { band(id: $id) { tracks(filter: $f) { totalCount } } }",
            lambda w, given=given: {"id": w.band_id, "f": given},
            BAD_USER_INPUT,
            f"filter.{name}",
        )
        for name, given in (
            ("query", {"query": "q" * 10_000}),
            ("tags", {"tags": ["t" * 10_000]}),
            ("key", {"key": "k" * 10_000}),
        )
    ),
    Case(
        "a slug with a NUL",
        'mutation($s: String!) { createBand(input: {name: "Fine", slug: $s}) { id } }',
        lambda w: {"s": "fi\x00ne"},
        BAD_USER_INPUT,
        "slug",
    ),
]


@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in CASES])
async def test_bad_input_is_refused_clearly_and_changes_nothing(
    client, session_factory, world, case: Case
):
    before = await database_snapshot(session_factory)
    result = await gql(client, case.document, case.variables(world), token=world.tokens[case.as_])
    assert_clear_error(result, case.code, field=case.field, reason=case.reason)
    assert await database_snapshot(session_factory) == before


# ------------------------------------------------------------------- connections

CONNECTIONS = {
    "Band.members": (
        "query($id: ID!, $first: Int, $after: String) { band(id: $id) { members(first: $first, after: $after) { totalCount } } }",
        "band_id",
    ),
    "Band.sessions": (
        "query($id: ID!, $first: Int, $after: String) { band(id: $id) { sessions(first: $first, after: $after) { totalCount } } }",
        "band_id",
    ),
    "Band.tracks": (
        "query($id: ID!, $first: Int, $after: String) { band(id: $id) { tracks(first: $first, after: $after) { totalCount } } }",
        "band_id",
    ),
    "Band.jobs": (
        "query($id: ID!, $first: Int, $after: String) { band(id: $id) { jobs(first: $first, after: $after) { totalCount } } }",
        "band_id",
    ),
    "User.bands": (
        "query($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on User { bands(first: $first, after: $after) { totalCount } } } }",
        "admin_user_id",
    ),
    "Track.versions": (
        "query($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on Track { versions(first: $first, after: $after) { totalCount } } } }",
        "track_id",
    ),
    "RehearsalSession.versions": (
        "query($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on RehearsalSession { versions(first: $first, after: $after) { totalCount } } } }",
        "session_id",
    ),
    "TrackVersion.comments": (
        "query($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on TrackVersion { comments(first: $first, after: $after) { totalCount } } } }",
        "version_id",
    ),
    "Comment.replies": (
        "query($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on Comment { replies(first: $first, after: $after) { totalCount } } } }",
        "admin_comment_id",
    ),
}


def _object_id(world: BandWorld, attribute: str) -> str:
    return world.user_ids["admin"] if attribute == "admin_user_id" else getattr(world, attribute)


@pytest.mark.parametrize("connection", list(CONNECTIONS))
async def test_each_connection_takes_first_from_0_to_100(client, world, connection: str):
    document, attribute = CONNECTIONS[connection]
    token = world.tokens["admin"]
    variables = {"id": _object_id(world, attribute)}
    for first in (0, 100):
        assert (await gql(client, document, {**variables, "first": first}, token=token)).ok()
    for first in (101, -1, 10_000):
        result = await gql(client, document, {**variables, "first": first}, token=token)
        assert_clear_error(result, BAD_USER_INPUT, field="first")


GARBAGE_CURSORS = {
    "not base64": "zzz!",
    "not a cursor": _b64("Track:1"),
    "negative": _b64("cursor:-1"),
    "not a number": _b64("cursor:one"),
    "past 64 bits": _b64(f"cursor:{2**64}"),
    "non-ASCII": "cürsor",
}


@pytest.mark.parametrize("connection", list(CONNECTIONS))
async def test_each_connection_refuses_a_garbage_cursor(client, world, connection: str):
    document, attribute = CONNECTIONS[connection]
    token = world.tokens["admin"]
    variables = {"id": _object_id(world, attribute)}
    for name, cursor in GARBAGE_CURSORS.items():
        result = await gql(client, document, {**variables, "after": cursor}, token=token)
        assert result.codes == [BAD_USER_INPUT], (name, result.errors)
        assert_clear_error(result, BAD_USER_INPUT, field="after")


async def test_a_cursor_past_the_end_is_an_empty_page(client, world):
    document = "query($id: ID!, $after: String) { band(id: $id) { tracks(after: $after) { nodes { id } pageInfo { hasNextPage } } } }"
    result = await gql(
        client,
        document,
        {"id": world.band_id, "after": _b64("cursor:500")},
        token=world.tokens["admin"],
    )
    tracks = result.ok()["band"]["tracks"]
    assert tracks == {"nodes": [], "pageInfo": {"hasNextPage": False}}


# ------------------------------------------------------------------- needing set-up


async def test_an_expired_invite_is_refused(client, session_factory, world):
    async with session_factory() as db_session:
        await db_session.execute(
            update(BandInvite).values(expires_at=utcnow() - timedelta(minutes=1))
        )
        await db_session.commit()
    before = await database_snapshot(session_factory)
    result = await gql(
        client,
        "mutation($t: String!) { acceptInvite(token: $t) { id } }",
        {"t": world.invite_token},
        token=world.tokens["stranger"],
    )
    assert_clear_error(result, BAD_USER_INPUT, field="token")
    assert "expired" in result.errors[0]["message"]
    assert await database_snapshot(session_factory) == before


async def test_replying_to_a_deleted_comment_is_refused(client, session_factory, world):
    admin = world.tokens["admin"]
    deleted = await gql(
        client,
        "mutation($id: ID!) { deleteComment(id: $id) }",
        {"id": world.member_comment_id},
        token=admin,
    )
    assert deleted.ok()
    before = await database_snapshot(session_factory)
    result = await gql(
        client,
        'mutation($v: ID!, $p: ID!) { addComment(input: {versionId: $v, body: "Hi", parentId: $p}) { id } }',
        {"v": world.version_id, "p": world.member_comment_id},
        token=admin,
    )
    assert_clear_error(result, BAD_USER_INPUT, field="parentId")
    assert await database_snapshot(session_factory) == before


async def test_control_characters_in_a_track_filter_are_dropped_as_on_the_way_in(client, world):
    """Stored titles, tags and keys are cleaned of control characters; so is a search for
    them (a NUL would otherwise reach PostgreSQL, which cannot compare it)."""
    admin = world.tokens["admin"]
    tag = 'mutation($id: ID!) { updateTrack(id: $id, tags: ["rock"], key: "Am") { id } }'
    assert (await gql(client, tag, {"id": world.track_id}, token=admin)).ok()
    document = "query($id: ID!, $f: TrackFilter) { band(id: $id) { tracks(filter: $f) { nodes { title } } } }"
    for given in ({"query": "so\x00ng"}, {"tags": ["ro\x00ck"]}, {"key": "A\x00m"}):
        result = await gql(client, document, {"id": world.band_id, "f": given}, token=admin)
        assert result.ok()["band"]["tracks"]["nodes"] == [{"title": "Song"}], given
