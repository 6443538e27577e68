"""Tracks: filters, orders, paging, editing, moving versions, merging."""

from __future__ import annotations

from datetime import date

import pytest

from tests.factories import add_take
from tests.graphql_client import gql, register
from tests.trusted_documents import TRACK_VERSIONS

CREATE_BAND = "mutation($n: String!) { createBand(input: {name: $n}) { id slug } }"
CREATE_TRACK = """
mutation($band: ID!, $title: String!, $tags: [String!]) {
  createTrack(bandId: $band, title: $title, tags: $tags) { id title status tags }
}
"""
UPDATE_TRACK = """
mutation($id: ID!, $title: String, $status: TrackStatus, $tags: [String!], $bpm: Float,
         $key: String, $notes: String) {
  updateTrack(id: $id, title: $title, status: $status, tags: $tags, bpm: $bpm, key: $key,
              notes: $notes) { id title status tags bpm key notes }
}
"""
TRACKS = """
query($band: ID!, $first: Int, $after: String, $filter: TrackFilter, $order: TrackOrder) {
  band(id: $band) {
    tracks(first: $first, after: $after, filter: $filter, orderBy: $order) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { title } }
    }
  }
}
"""


@pytest.fixture
async def band(client):
    token, _ = await register(client, "keys")
    band = (await gql(client, CREATE_BAND, {"n": "The Fuzz"}, token=token)).ok()["createBand"]
    return token, band["id"]


async def _titles(client, token, band_id, **variables) -> list[str]:
    data = (await gql(client, TRACKS, {"band": band_id, **variables}, token=token)).ok()
    return [edge["node"]["title"] for edge in data["band"]["tracks"]["edges"]]


async def test_create_band_makes_a_slug_and_the_creator_admin(client):
    token, _ = await register(client, "singer")
    band = (await gql(client, CREATE_BAND, {"n": "Sœurs de Cœur!"}, token=token)).ok()
    assert band["createBand"]["slug"] == "soeurs-de-coeur"
    by_slug = await gql(
        client,
        "query($s: String!) { band(slug: $s) { name viewerRole } }",
        {"s": band["createBand"]["slug"]},
        token=token,
    )
    assert by_slug.ok()["band"] == {"name": "Sœurs de Cœur!", "viewerRole": "ADMIN"}


async def test_paging_walks_the_whole_list_once(client, band):
    token, band_id = band
    for index in range(7):
        await gql(client, CREATE_TRACK, {"band": band_id, "title": f"Song {index}"}, token=token)
    seen: list[str] = []
    after = None
    while True:
        data = (
            await gql(client, TRACKS, {"band": band_id, "first": 3, "after": after}, token=token)
        ).ok()["band"]["tracks"]
        assert data["totalCount"] == 7
        seen += [edge["node"]["title"] for edge in data["edges"]]
        assert data["pageInfo"]["hasPreviousPage"] == (after is not None)
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert seen == [f"Song {index}" for index in range(7)]


async def test_filters(client, band, session_factory):
    token, band_id = band
    ids = {}
    for title, tags in [("Groove", ["funk", "live"]), ("Ballad", ["slow"]), ("Grunge", ["live"])]:
        created = await gql(
            client, CREATE_TRACK, {"band": band_id, "title": title, "tags": tags}, token=token
        )
        ids[title] = created.ok()["createTrack"]["id"]
    await gql(
        client, UPDATE_TRACK, {"id": ids["Groove"], "bpm": 120, "key": "A minor"}, token=token
    )
    await gql(
        client, UPDATE_TRACK, {"id": ids["Ballad"], "bpm": 70, "status": "READY"}, token=token
    )
    await add_take(
        session_factory, band_id=band_id, title="Groove", session_date=date(2023, 10, 15)
    )
    await add_take(session_factory, band_id=band_id, title="Grunge")  # no session

    assert await _titles(client, token, band_id, filter={"query": "gr"}) == ["Groove", "Grunge"]
    assert await _titles(client, token, band_id, filter={"query": "%"}) == []
    assert await _titles(client, token, band_id, filter={"tags": ["live"]}) == ["Groove", "Grunge"]
    assert await _titles(client, token, band_id, filter={"tags": ["live", "FUNK"]}) == ["Groove"]
    assert await _titles(client, token, band_id, filter={"key": "a MINOR"}) == ["Groove"]
    assert await _titles(client, token, band_id, filter={"bpmMin": 100}) == ["Groove"]
    assert await _titles(client, token, band_id, filter={"bpmMax": 100}) == ["Ballad"]
    assert await _titles(client, token, band_id, filter={"status": ["READY"]}) == ["Ballad"]
    assert await _titles(client, token, band_id, filter={"unattributed": True}) == ["Grunge"]
    assert await _titles(client, token, band_id, filter={"unattributed": False}) == [
        "Ballad",
        "Groove",
    ]
    sessions = await gql(
        client,
        "query($b: ID!) { band(id: $b) { sessions { nodes { id date } } } }",
        {"b": band_id},
        token=token,
    )
    session_id = sessions.ok()["band"]["sessions"]["nodes"][0]["id"]
    assert await _titles(client, token, band_id, filter={"sessionId": session_id}) == ["Groove"]


async def test_orders(client, band, session_factory):
    token, band_id = band
    for title in ["B side", "A side", "C side"]:
        await gql(client, CREATE_TRACK, {"band": band_id, "title": title}, token=token)
    await add_take(session_factory, band_id=band_id, title="C side", session_date=date(2023, 1, 1))
    version = await add_take(session_factory, band_id=band_id, title="B side")
    assert await _titles(client, token, band_id, order="TITLE") == ["A side", "B side", "C side"]
    assert (await _titles(client, token, band_id, order="RECENTLY_RECORDED"))[:2] == [
        "B side",
        "C side",
    ]
    comment = """mutation($v: ID!) { addComment(input: {versionId: $v, body: "nice"}) { id } }"""
    from backend.graphql.relay import to_global_id

    await gql(client, comment, {"v": to_global_id("TrackVersion", version.id)}, token=token)
    assert (await _titles(client, token, band_id, order="RECENTLY_COMMENTED"))[0] == "B side"


async def test_update_track_person_values_and_title_identity(client, band):
    token, band_id = band
    groove = (
        await gql(client, CREATE_TRACK, {"band": band_id, "title": "groove"}, token=token)
    ).ok()
    await gql(client, CREATE_TRACK, {"band": band_id, "title": "Ballad"}, token=token)
    track_id = groove["createTrack"]["id"]
    updated = await gql(
        client,
        UPDATE_TRACK,
        {"id": track_id, "title": "Groove", "tags": ["Funk", "funk", "live"], "notes": "in E"},
        token=token,
    )
    assert updated.ok()["updateTrack"] == {
        "id": track_id,
        "title": "Groove",
        "status": "IDEA",
        "tags": ["funk", "live"],
        "bpm": None,
        "key": None,
        "notes": "in E",
    }
    # Another spelling of an existing title is the same song: refused, pointing to merge.
    clash = await gql(client, UPDATE_TRACK, {"id": track_id, "title": "BALLAD"}, token=token)
    assert clash.codes == ["BAD_USER_INPUT"]
    assert clash.errors[0]["extensions"]["field"] == "title"
    same_song = await gql(client, CREATE_TRACK, {"band": band_id, "title": "new_song"}, token=token)
    assert same_song.ok()
    again = await gql(client, CREATE_TRACK, {"band": band_id, "title": "New Song"}, token=token)
    assert again.codes == ["BAD_USER_INPUT"]


async def test_same_title_in_another_session_is_another_version(client, band, session_factory):
    token, band_id = band
    await add_take(
        session_factory, band_id=band_id, title="groove", session_date=date(2023, 10, 15)
    )
    await add_take(
        session_factory, band_id=band_id, title="Groove", session_date=date(2023, 10, 22)
    )
    tracks = (await gql(client, TRACK_VERSIONS, {"b": band_id}, token=token)).ok()["band"]["tracks"]
    assert len(tracks["nodes"]) == 1
    track = tracks["nodes"][0]
    assert [v["number"] for v in track["versions"]["nodes"]] == [2, 1]
    assert [s["date"] for s in track["sessions"]] == ["2023-10-22", "2023-10-15"]


async def test_move_version_and_merge_tracks(client, band, session_factory):
    from backend.graphql.relay import to_global_id

    token, band_id = band
    a1 = await add_take(
        session_factory, band_id=band_id, title="Jam", session_date=date(2023, 1, 1)
    )
    a2 = await add_take(
        session_factory, band_id=band_id, title="Jam", session_date=date(2023, 1, 8)
    )
    b1 = await add_take(
        session_factory, band_id=band_id, title="Riff", session_date=date(2023, 1, 8)
    )
    jam, riff = to_global_id("Track", a1.track_id), to_global_id("Track", b1.track_id)

    move = """mutation($v: ID!, $t: ID!) { moveVersion(versionId: $v, trackId: $t) {
        number track { title } } }"""
    moved = (
        await gql(client, move, {"v": to_global_id("TrackVersion", a2.id), "t": riff}, token=token)
    ).ok()
    assert moved["moveVersion"] == {"number": 2, "track": {"title": "Riff"}}

    comment = (
        """mutation($v: ID!) { addComment(input: {versionId: $v, body: "keep", atMs: 5}) { id } }"""
    )
    await gql(client, comment, {"v": to_global_id("TrackVersion", a1.id)}, token=token)
    react = "mutation($t: ID!) { react(targetId: $t, kind: FIRE) { total } }"
    await gql(client, react, {"t": jam}, token=token)
    await gql(client, react, {"t": riff}, token=token)

    merge = """mutation($s: ID!, $t: ID!) { mergeTracks(sourceTrackId: $s, targetTrackId: $t) {
        title commentCount reactions { total }
        versions { nodes { number comments { nodes { body } } } } } }"""
    merged = (await gql(client, merge, {"s": jam, "t": riff}, token=token)).ok()["mergeTracks"]
    assert merged["title"] == "Riff"
    assert [v["number"] for v in merged["versions"]["nodes"]] == [3, 2, 1]
    assert merged["commentCount"] == 1
    assert merged["versions"]["nodes"][0]["comments"]["nodes"] == [{"body": "keep"}]
    # Both tracks had the same person's FIRE: one survives, not two.
    assert merged["reactions"]["total"] == 1
    gone = await gql(client, "query($id: ID!) { node(id: $id) { id } }", {"id": jam}, token=token)
    assert gone.codes == ["NOT_FOUND"]


async def test_sessions_filter_by_date_and_update(client, band, session_factory):
    token, band_id = band
    for day in (1, 8, 15):
        await add_take(
            session_factory, band_id=band_id, title=f"t{day}", session_date=date(2023, 3, day)
        )
    query = """query($b: ID!, $from: Date, $to: Date) { band(id: $b) {
        sessions(from: $from, to: $to) {
          totalCount nodes { id date trackCount versionCount } } } }"""
    data = (
        await gql(
            client, query, {"b": band_id, "from": "2023-03-05", "to": "2023-03-15"}, token=token
        )
    ).ok()["band"]["sessions"]
    assert [node["date"] for node in data["nodes"]] == ["2023-03-15", "2023-03-08"]
    assert data["nodes"][0]["trackCount"] == data["nodes"][0]["versionCount"] == 1
    update = """mutation($id: ID!) { updateSession(id: $id, label: " Gig prep ", notes: "loud") {
        label notes } }"""
    updated = await gql(client, update, {"id": data["nodes"][0]["id"]}, token=token)
    assert updated.ok()["updateSession"] == {"label": "Gig prep", "notes": "loud"}
