"""N+1 guard: the number of SQL statements of a deep query does not grow with the rows."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from backend.feedback.models import Comment, Reaction, ReactionKind, ReactionTarget
from backend.graphql.relay import parse_global_id
from backend.library import service as library_service
from backend.media.models import Analysis, Asset, Rendition
from tests.graphql_client import gql, register
from tests.trusted_documents import BAND_PAGE

WAVEFORM_META = {
    "sample_rate": 44100,
    "channels": 1,
    "bits": 8,
    "levels": [{"samples_per_pixel": 256, "length": 100, "key": "sha256/x", "asset_id": None}],
}


async def _seed(session_factory, *, band_id: str, user_id: str, tracks: int) -> None:
    _, band_pk = parse_global_id(band_id)
    _, user_pk = parse_global_id(user_id)
    async with session_factory() as db:
        original = Asset(
            sha256=f"{tracks:064x}", size_bytes=10, mime="audio/wav", storage_key=f"sha256/{tracks}"
        )
        db.add(original)
        await db.flush()
        for index in range(tracks):
            track = await library_service.get_or_create_track(
                db_session=db, band_id=band_pk, title=f"Song {index:03d}"
            )
            for take in range(3):
                session = await library_service.get_or_create_session(
                    db_session=db,
                    band_id=band_pk,
                    session_date=date(2023, 1, 1) + timedelta(days=take * 7),
                )
                version = await library_service.add_version(
                    db_session=db, track=track, session=session, original_filename="take.wav"
                )
                version.asset_id = original.id
                version.cover_asset_id = original.id
                db.add(
                    Analysis(
                        version_id=version.id,
                        bpm=120.0,
                        key="A",
                        scale="minor",
                        waveform_meta=WAVEFORM_META,
                    )
                )
                for format, name in (("hls", "index.m3u8"), ("mp3", "fallback.mp3")):
                    db.add(
                        Rendition(
                            version_id=version.id,
                            format=format,
                            storage_key=f"renditions/{version.id}/{format}/{name}",
                        )
                    )
                parent = Comment(
                    band_id=band_pk,
                    version_id=version.id,
                    author_id=user_pk,
                    body="tight",
                    at_ms=1000,
                )
                db.add(parent)
                await db.flush()
                db.add(
                    Comment(
                        band_id=band_pk,
                        version_id=version.id,
                        author_id=user_pk,
                        body="agreed",
                        parent_id=parent.id,
                    )
                )
                db.add(
                    Reaction(
                        band_id=band_pk,
                        user_id=user_pk,
                        target_type=ReactionTarget.VERSION,
                        target_id=version.id,
                        kind=ReactionKind.FIRE,
                    )
                )
            db.add(
                Reaction(
                    band_id=band_pk,
                    user_id=user_pk,
                    target_type=ReactionTarget.TRACK,
                    target_id=track.id,
                    kind=ReactionKind.LOVE,
                )
            )
        await db.commit()


async def _statements_for_band_page(client, session_factory, statement_counter, tracks: int):
    token, user_id = await register(client, f"drummer{tracks}")
    create = "mutation($n: String!) { createBand(input: {name: $n}) { id } }"
    band_id = (await gql(client, create, {"n": f"Band {tracks}"}, token=token)).ok()["createBand"][
        "id"
    ]
    await _seed(session_factory, band_id=band_id, user_id=user_id, tracks=tracks)
    statement_counter.statements.clear()
    statement_counter.active = True
    result = await gql(client, BAND_PAGE, {"id": band_id}, token=token)
    statement_counter.active = False
    data = result.ok()["band"]["tracks"]
    assert len(data["nodes"]) == tracks
    first = data["nodes"][0]
    assert first["latestVersion"]["analysis"]["key"] == "A"
    assert first["latestVersion"]["waveform"]["length"] == 100
    assert "/media/renditions/" in first["versions"]["nodes"][0]["streams"]["hls"]
    assert first["versions"]["totalCount"] == 3
    assert first["commentCount"] == 6
    assert first["versions"]["nodes"][0]["comments"]["nodes"][0]["replies"]["totalCount"] == 1
    assert first["reactions"]["counts"] == [{"kind": "LOVE", "count": 1, "viewerReacted": True}]
    return statement_counter.count


@pytest.mark.parametrize("sizes", [(5, 50)])
async def test_band_page_statements_do_not_grow_with_tracks(
    client, session_factory, statement_counter, sizes
):
    small, large = sizes
    few = await _statements_for_band_page(client, session_factory, statement_counter, small)
    many = await _statements_for_band_page(client, session_factory, statement_counter, large)
    assert few == many, (few, many)
    # One statement per loader the query touches; a regression to per-row loading
    # would show up as dozens more even at 5 tracks.
    assert many <= 30, "\n".join(statement_counter.statements)
