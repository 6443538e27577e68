"""Rehearsal sessions, tracks and their versions: creating, editing, moving, merging."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.bands.access import BandAccess
from backend.bands.models import Band
from backend.core import validation
from backend.core.database import insert_ignore, insert_ignoring, utcnow
from backend.core.errors import AlreadyExists, BadUserInput, NotFound
from backend.feedback.models import Reaction, ReactionTarget
from backend.library.models import (
    RehearsalSession,
    Track,
    TrackStatus,
    TrackTag,
    TrackVersion,
    VersionStatus,
)
from backend.library.titles import normalize_title

MAX_TAGS = 20
MAX_BPM = 400.0


@dataclass(frozen=True)
class TrackChanges:
    """Fields of updateTrack; None means 'leave as it is'."""

    title: str | None = None
    status: TrackStatus | None = None
    tags: list[str] | None = None
    bpm: float | None = None
    key: str | None = None
    notes: str | None = None


async def get_or_create_session(
    *, db_session: AsyncSession, band_id: int, session_date: date
) -> RehearsalSession:
    """The band's rehearsal session on that date, made if needed (safe when two scans
    ask at once: the unique key decides, nobody fails)."""
    where = (RehearsalSession.band_id == band_id, RehearsalSession.date == session_date)
    session = await db_session.scalar(select(RehearsalSession).where(*where))
    if session is None:
        await insert_ignore(
            db_session,
            RehearsalSession,
            {"band_id": band_id, "date": session_date, "created_at": utcnow()},
            ["band_id", "date"],
        )
        session = await db_session.scalar(select(RehearsalSession).where(*where))
    assert session is not None
    return session


async def get_or_create_track(*, db_session: AsyncSession, band_id: int, title: str) -> Track:
    """The band's track with this (normalised) title, made if needed (safe when two
    scans ask at once)."""
    clean = validation.text(title, field="title", max_length=200)
    normalized = normalize_title(clean)
    where = (Track.band_id == band_id, Track.normalized_title == normalized)
    track = await db_session.scalar(select(Track).where(*where))
    if track is None:
        await insert_ignore(
            db_session,
            Track,
            {
                "band_id": band_id,
                "title": clean,
                "normalized_title": normalized,
                "status": TrackStatus.WORK_IN_PROGRESS,
                "bpm_set_by_person": False,
                "key_set_by_person": False,
                "created_at": utcnow(),
            },
            ["band_id", "normalized_title"],
        )
        track = await db_session.scalar(select(Track).where(*where))
    assert track is not None
    return track


async def track_ids_for_titles(
    *, db_session: AsyncSession, band_id: int, titles: list[str], known: dict[str, int]
) -> dict[str, int]:
    """The ids of the band's tracks for these titles (as given), made where needed, for a
    scan's batch. ``known`` maps normalised titles to ids the caller read before (and is
    kept up to date); what it lacks is made in one ``INSERT … ON CONFLICT DO NOTHING
    RETURNING``, and only a title another writer made meanwhile is read back. Titles
    that are not valid (get_or_create_track says why) are left out."""
    keys: dict[str, str] = {}  # title as given -> normalised
    clean: dict[str, str] = {}  # normalised -> title to store
    for title in titles:
        if title in keys:
            continue
        try:
            valid = validation.text(title, field="title", max_length=200)
        except BadUserInput:
            continue
        key = keys[title] = normalize_title(valid)
        clean.setdefault(key, valid)
    missing = [key for key in clean if key not in known]
    if missing:
        now = utcnow()
        rows = [
            {
                "band_id": band_id,
                "title": clean[key],
                "normalized_title": key,
                "status": TrackStatus.WORK_IN_PROGRESS,
                "bpm_set_by_person": False,
                "key_set_by_person": False,
                "created_at": now,
            }
            for key in missing
        ]
        table = Track.__table__
        made = await db_session.execute(
            insert_ignoring(db_session, table, ["band_id", "normalized_title"]).returning(
                table.c.normalized_title, table.c.id
            ),
            rows,
        )
        known.update({key: track_id for key, track_id in made})
        taken = [key for key in missing if key not in known]
        if taken:  # made by another writer since `known` was read
            found = await db_session.execute(
                select(Track.normalized_title, Track.id).where(
                    Track.band_id == band_id, Track.normalized_title.in_(taken)
                )
            )
            known.update({key: track_id for key, track_id in found})
    return {title: known[key] for title, key in keys.items() if key in known}


async def band_track_ids(*, db_session: AsyncSession, band_id: int) -> dict[str, int]:
    """Normalised title -> id of every track of the band (one read, for a scan)."""
    rows = await db_session.execute(
        select(Track.normalized_title, Track.id).where(Track.band_id == band_id)
    )
    return {key: track_id for key, track_id in rows}


async def session_ids_for_dates(
    *, db_session: AsyncSession, band_id: int, dates: list[date], known: dict[date, int]
) -> None:
    """Add to ``known`` (date -> id, read before by the caller) the band's rehearsal
    sessions on these dates, made where needed: one insert, and a read only for a date
    another writer made meanwhile."""
    missing = sorted({day for day in dates if day not in known})
    if not missing:
        return
    table = RehearsalSession.__table__
    now = utcnow()
    made = await db_session.execute(
        insert_ignoring(db_session, table, ["band_id", "date"]).returning(table.c.date, table.c.id),
        [{"band_id": band_id, "date": day, "created_at": now} for day in missing],
    )
    known.update({day: session_id for day, session_id in made})
    taken = [day for day in missing if day not in known]
    if taken:
        found = await db_session.execute(
            select(RehearsalSession.date, RehearsalSession.id).where(
                RehearsalSession.band_id == band_id, RehearsalSession.date.in_(taken)
            )
        )
        known.update({day: session_id for day, session_id in found})


async def band_session_ids(*, db_session: AsyncSession, band_id: int) -> dict[date, int]:
    """Date -> id of every rehearsal session of the band (one read, for a scan)."""
    rows = await db_session.execute(
        select(RehearsalSession.date, RehearsalSession.id).where(
            RehearsalSession.band_id == band_id
        )
    )
    return {day: session_id for day, session_id in rows}


async def create_track(
    *,
    db_session: AsyncSession,
    access: BandAccess,
    band_id: int,
    title: str,
    status: TrackStatus = TrackStatus.IDEA,
    tags: list[str] | None = None,
) -> Track:
    """A new track with no recordings yet (a song idea); the title must be free."""
    access.require_member(band_id, what="band")
    clean = validation.text(title, field="title", max_length=200)
    await _ensure_title_free(db_session=db_session, band_id=band_id, title=clean)
    track = Track(
        band_id=band_id, title=clean, normalized_title=normalize_title(clean), status=status
    )
    db_session.add(track)
    await db_session.flush()
    if tags:
        await _replace_tags(db_session=db_session, track_id=track.id, tags=tags)
    return track


async def add_version(
    *,
    db_session: AsyncSession,
    track: Track,
    original_filename: str,
    session: RehearsalSession | None = None,
    source_id: int | None = None,
    path: str | None = None,
    label: str | None = None,
    recorded_at: datetime | None = None,
    size_bytes: int | None = None,
    format: str | None = None,
) -> TrackVersion:
    """Register a recording as the track's next version (numbered from 1)."""
    await lock_numbering(db_session=db_session, band_id=track.band_id)
    number = await next_number(db_session=db_session, track_id=track.id)
    version = TrackVersion(
        band_id=track.band_id,
        track_id=track.id,
        session_id=session.id if session else None,
        source_id=source_id,
        path=path,
        original_filename=original_filename,
        number=number,
        label=label or f"Take {number}",
        recorded_at=recorded_at,
        size_bytes=size_bytes,
        format=format,
        status=VersionStatus.PENDING,
    )
    db_session.add(version)
    await db_session.flush()
    await touch_recorded(db_session=db_session, track_ids=[track.id])
    await db_session.refresh(track, ["last_recorded_at"])
    return version


async def update_track(
    *, db_session: AsyncSession, access: BandAccess, track_id: int, changes: TrackChanges
) -> Track:
    """Edit a track's title, status, tags, bpm, key or notes (members)."""
    track = await access.fetch(db_session=db_session, model=Track, object_id=track_id, what="track")
    if changes.title is not None:
        clean = validation.text(changes.title, field="title", max_length=200)
        if normalize_title(clean) != track.normalized_title:
            await _ensure_title_free(db_session=db_session, band_id=track.band_id, title=clean)
        track.title, track.normalized_title = clean, normalize_title(clean)
    if changes.status is not None:
        track.status = changes.status
    if changes.bpm is not None:
        if not 0 < changes.bpm <= MAX_BPM:
            raise BadUserInput(f"bpm must be between 0 and {MAX_BPM:g}.", field="bpm")
        track.bpm, track.bpm_set_by_person = changes.bpm, True
    if changes.key is not None:
        track.key = validation.optional_text(changes.key, field="key", max_length=20)
        track.key_set_by_person = track.key is not None
    if changes.notes is not None:
        track.notes = validation.optional_text(changes.notes, field="notes", max_length=20_000)
    if changes.tags is not None:
        await _replace_tags(db_session=db_session, track_id=track.id, tags=changes.tags)
    await db_session.flush()
    return track


async def update_session(
    *,
    db_session: AsyncSession,
    access: BandAccess,
    session_id: int,
    label: str | None,
    notes: str | None,
) -> RehearsalSession:
    """Name a rehearsal session or write notes on it (members)."""
    session = await access.fetch(
        db_session=db_session,
        model=RehearsalSession,
        object_id=session_id,
        what="session",
    )
    if label is not None:
        session.label = validation.optional_text(label, field="label", max_length=200)
    if notes is not None:
        session.notes = validation.optional_text(notes, field="notes", max_length=20_000)
    await db_session.flush()
    return session


async def move_version(
    *, db_session: AsyncSession, access: BandAccess, version_id: int, track_id: int
) -> TrackVersion:
    """Make a take a version of another track of the same band; it becomes its newest."""
    version = await access.fetch(
        db_session=db_session,
        model=TrackVersion,
        object_id=version_id,
        what="version",
    )
    target = await access.fetch(
        db_session=db_session, model=Track, object_id=track_id, what="track"
    )
    if target.band_id != version.band_id:
        raise NotFound("track")
    if target.id == version.track_id:
        return version
    old_track_id = version.track_id
    await lock_numbering(db_session=db_session, band_id=target.band_id)
    version.number = await next_number(db_session=db_session, track_id=target.id)
    version.track_id = target.id
    await db_session.flush()
    await touch_recorded(db_session=db_session, track_ids=[old_track_id, target.id])
    await db_session.refresh(target, ["last_recorded_at"])
    return version


async def merge_tracks(
    *, db_session: AsyncSession, access: BandAccess, source_track_id: int, target_track_id: int
) -> Track:
    """Fold one track into another: its versions (with their comments and reactions),
    tags and reactions move over, then the emptied track is deleted."""
    source = await access.fetch(
        db_session=db_session,
        model=Track,
        object_id=source_track_id,
        what="track",
    )
    target = await access.fetch(
        db_session=db_session,
        model=Track,
        object_id=target_track_id,
        what="track",
    )
    if source.band_id != target.band_id:
        raise NotFound("track")
    if source.id == target.id:
        raise BadUserInput("A track cannot be merged into itself.", field="targetTrackId")
    # Renumber after the target's newest, keeping the source's order.
    await lock_numbering(db_session=db_session, band_id=target.band_id)
    offset = await next_number(db_session=db_session, track_id=target.id) - 1
    await db_session.execute(
        update(TrackVersion)
        .where(TrackVersion.track_id == source.id)
        .values(track_id=target.id, number=TrackVersion.number + offset)
    )
    tags = await db_session.scalars(select(TrackTag.tag).where(TrackTag.track_id == source.id))
    existing = await db_session.scalars(select(TrackTag.tag).where(TrackTag.track_id == target.id))
    merged_tags = list(dict.fromkeys([*existing, *tags]))[:MAX_TAGS]
    await _move_reactions(db_session=db_session, source_id=source.id, target_id=target.id)
    await db_session.execute(delete(TrackTag).where(TrackTag.track_id == source.id))
    await db_session.delete(source)
    await db_session.flush()
    await _replace_tags(db_session=db_session, track_id=target.id, tags=merged_tags)
    if target.last_commented_at is None or (
        source.last_commented_at and source.last_commented_at > target.last_commented_at
    ):
        target.last_commented_at = source.last_commented_at
    await touch_recorded(db_session=db_session, track_ids=[target.id])
    await db_session.refresh(target, ["last_recorded_at"])
    return target


async def _move_reactions(*, db_session: AsyncSession, source_id: int, target_id: int) -> None:
    """Reactions on the source track go to the target, except where the same person
    already reacted the same way there (the unique key would refuse a duplicate)."""
    on_target = select(Reaction.user_id, Reaction.kind).where(
        Reaction.target_type == ReactionTarget.TRACK, Reaction.target_id == target_id
    )
    taken = {(user_id, kind) for user_id, kind in await db_session.execute(on_target)}
    moving = await db_session.scalars(
        select(Reaction).where(
            Reaction.target_type == ReactionTarget.TRACK, Reaction.target_id == source_id
        )
    )
    for reaction in moving:
        if (reaction.user_id, reaction.kind) in taken:
            await db_session.delete(reaction)
        else:
            reaction.target_id = target_id


async def _ensure_title_free(*, db_session: AsyncSession, band_id: int, title: str) -> None:
    taken = await db_session.scalar(
        select(Track.id).where(
            Track.band_id == band_id, Track.normalized_title == normalize_title(title)
        )
    )
    if taken:
        raise AlreadyExists(
            "The band has a track with this title already; merge into it instead.",
            field="title",
        )


async def _replace_tags(*, db_session: AsyncSession, track_id: int, tags: list[str]) -> None:
    clean = list(
        dict.fromkeys(validation.text(tag, field="tags", max_length=50).lower() for tag in tags)
    )
    if len(clean) > MAX_TAGS:
        raise BadUserInput(f"A track has at most {MAX_TAGS} tags.", field="tags")
    await db_session.execute(delete(TrackTag).where(TrackTag.track_id == track_id))
    db_session.add_all(TrackTag(track_id=track_id, tag=tag) for tag in clean)
    await db_session.flush()


async def lock_numbering(*, db_session: AsyncSession, band_id: int) -> None:
    """Hold the band's take numbering until the transaction ends: two writers (scans of
    two sources, a scan and a merge) must not both read the same max(number). Call it
    first in the transaction: on SQLite the write takes the database's one write lock
    before anything is read, so what is read next is current."""
    if db_session.bind.dialect.name == "postgresql":
        await db_session.execute(select(Band.id).where(Band.id == band_id).with_for_update())
    else:
        await db_session.execute(update(Band).where(Band.id == band_id).values(id=Band.id))


async def next_number(*, db_session: AsyncSession, track_id: int) -> int:
    """The number a new take of the track gets (hold lock_numbering first)."""
    highest = await db_session.scalar(
        select(func.max(TrackVersion.number)).where(TrackVersion.track_id == track_id)
    )
    return (highest or 0) + 1


async def touch_recorded(*, db_session: AsyncSession, track_ids: list[int]) -> None:
    """Keep Track.last_recorded_at (the RECENTLY_RECORDED order) equal to its newest take:
    one statement for any number of tracks."""
    if not track_ids:
        return
    newest = (
        select(func.max(func.coalesce(TrackVersion.recorded_at, TrackVersion.created_at)))
        .where(TrackVersion.track_id == Track.id)
        .scalar_subquery()
    )
    # Loaded Track objects are not updated (refresh one that is used afterwards).
    await db_session.execute(
        update(Track)
        .where(Track.id.in_(track_ids))
        .values(last_recorded_at=newest)
        .execution_options(synchronize_session=False)
    )


def touch_commented(track: Track, when: datetime | None = None) -> None:
    """Mark a track as just commented on (the RECENTLY_COMMENTED order)."""
    track.last_commented_at = when or utcnow()
