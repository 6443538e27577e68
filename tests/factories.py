"""Build rows directly through the services, for what GraphQL cannot create yet
(versions come from scans and uploads) and for large fixtures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.database import Base
from backend.graphql.relay import parse_global_id, to_global_id
from backend.jobs.models import Job, JobKind, JobStatus
from backend.library import service as library_service
from backend.library.models import Source, SourceKind, TrackVersion
from tests.graphql_client import gql, register


async def add_take(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    band_id: str,
    title: str,
    session_date: date | None = None,
    filename: str = "take.wav",
    duration_ms: int | None = 180_000,
) -> TrackVersion:
    """A recording of ``title`` as the next version of its track (made if needed)."""
    _, band_pk = parse_global_id(band_id)
    async with session_factory() as db_session:
        track = await library_service.get_or_create_track(
            db_session=db_session, band_id=band_pk, title=title
        )
        session = (
            await library_service.get_or_create_session(
                db_session=db_session, band_id=band_pk, session_date=session_date
            )
            if session_date
            else None
        )
        version = await library_service.add_version(
            db_session=db_session,
            track=track,
            session=session,
            original_filename=filename,
            path=f"{session_date:%y%m%d}/{title}/{filename}" if session_date else None,
        )
        version.duration_ms = duration_ms
        await db_session.commit()
        return version


async def database_snapshot(
    session_factory: async_sessionmaker[AsyncSession],
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order: equal snapshots mean nothing changed."""
    import backend.models  # noqa: F401  (registers every table on Base.metadata)

    snapshot: dict[str, list[tuple[Any, ...]]] = {}
    async with session_factory() as db_session:
        for table in Base.metadata.sorted_tables:
            rows = await db_session.execute(select(table).order_by(*table.primary_key.columns))
            snapshot[table.name] = [tuple(row) for row in rows]
    return snapshot


@dataclass
class BandWorld:
    """One band ("hum") with an admin (ada), two members who joined by invite (ben, cy),
    and its data; plus a stranger (zed) with a band of their own. Ids are global ids."""

    tokens: dict[str, str | None] = field(default_factory=dict)
    user_ids: dict[str, str] = field(default_factory=dict)
    band_id: str = ""
    invite_token: str = ""
    track_id: str = ""
    other_track_id: str = ""
    version_id: str = ""
    second_version_id: str = ""
    session_id: str = ""
    admin_comment_id: str = ""
    member_comment_id: str = ""
    job_id: str = ""
    source_id: str = ""
    foreign_band_id: str = ""
    foreign_track_id: str = ""
    foreign_version_id: str = ""


async def build_band_world(
    client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> BandWorld:
    """Everything made through GraphQL except takes, the job and the source."""
    world = BandWorld()
    for role, handle in (
        ("admin", "ada"),
        ("member", "ben"),
        ("member2", "cy"),
        ("stranger", "zed"),
    ):
        world.tokens[role], world.user_ids[role] = await register(client, handle)
    world.tokens["signed_out"] = None
    admin, member = world.tokens["admin"], world.tokens["member"]

    create_band = (
        "mutation($n: String!, $s: String) { createBand(input: {name: $n, slug: $s}) { id } }"
    )
    world.band_id = (await gql(client, create_band, {"n": "Hum", "s": "hum"}, token=admin)).ok()[
        "createBand"
    ]["id"]
    invite = "mutation($b: ID!) { createInvite(bandId: $b) }"
    world.invite_token = (await gql(client, invite, {"b": world.band_id}, token=admin)).ok()[
        "createInvite"
    ]
    for role in ("member", "member2"):
        accept = "mutation($t: String!) { acceptInvite(token: $t) { id } }"
        (await gql(client, accept, {"t": world.invite_token}, token=world.tokens[role])).ok()

    create_track = "mutation($b: ID!, $t: String!) { createTrack(bandId: $b, title: $t) { id } }"
    world.track_id = (
        await gql(client, create_track, {"b": world.band_id, "t": "Song"}, token=admin)
    ).ok()["createTrack"]["id"]
    world.other_track_id = (
        await gql(client, create_track, {"b": world.band_id, "t": "Sketch"}, token=member)
    ).ok()["createTrack"]["id"]
    first = await add_take(
        session_factory, band_id=world.band_id, title="Song", session_date=date(2024, 3, 1)
    )
    second = await add_take(
        session_factory, band_id=world.band_id, title="Song", session_date=date(2024, 3, 1)
    )
    world.version_id = to_global_id("TrackVersion", first.id)
    world.second_version_id = to_global_id("TrackVersion", second.id)
    assert first.session_id is not None
    world.session_id = to_global_id("RehearsalSession", first.session_id)
    update_session = 'mutation($id: ID!) { updateSession(id: $id, label: "Friday") { id } }'
    (await gql(client, update_session, {"id": world.session_id}, token=admin)).ok()

    add_comment = """
    mutation($v: ID!, $body: String!) {
      addComment(input: {versionId: $v, body: $body, atMs: 1000}) { id }
    }"""
    world.admin_comment_id = (
        await gql(client, add_comment, {"v": world.version_id, "body": "Too fast"}, token=admin)
    ).ok()["addComment"]["id"]
    world.member_comment_id = (
        await gql(client, add_comment, {"v": world.version_id, "body": "Agreed"}, token=member)
    ).ok()["addComment"]["id"]
    react = "mutation($t: ID!) { react(targetId: $t, kind: LIKE) { total } }"
    (await gql(client, react, {"t": world.track_id}, token=admin)).ok()
    (await gql(client, react, {"t": world.admin_comment_id}, token=member)).ok()

    _, band_pk = parse_global_id(world.band_id)
    async with session_factory() as db_session:
        source = Source(band_id=band_pk, kind=SourceKind.LOCAL_FOLDER, name="NAS", root="/mnt/nas")
        db_session.add(source)
        await db_session.flush()
        job = Job(
            band_id=band_pk, kind=JobKind.SCAN, status=JobStatus.SUCCEEDED, source_id=source.id
        )
        db_session.add(job)
        await db_session.commit()
        world.source_id = to_global_id("Source", source.id)
        world.job_id = to_global_id("Job", job.id)

    stranger = world.tokens["stranger"]
    world.foreign_band_id = (
        await gql(client, create_band, {"n": "Elsewhere", "s": "elsewhere"}, token=stranger)
    ).ok()["createBand"]["id"]
    world.foreign_track_id = (
        await gql(client, create_track, {"b": world.foreign_band_id, "t": "Far"}, token=stranger)
    ).ok()["createTrack"]["id"]
    foreign = await add_take(session_factory, band_id=world.foreign_band_id, title="Far")
    world.foreign_version_id = to_global_id("TrackVersion", foreign.id)
    return world


def cheap_password_hashing(monkeypatch: Any) -> None:
    """Argon2 with the smallest cost for tests that register many users: the matrix
    tests build a world of four accounts per test, and real hashing dominates their time."""
    from argon2 import PasswordHasher

    from backend.accounts import passwords

    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
