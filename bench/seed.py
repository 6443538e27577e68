"""Bulk seeding for the band-page benchmark: one band, its members and a large library,
with explicit ids (known up front), inserted by Core executemany (no ORM), then ANALYZEd.

The random generator is drawn from in a fixed order, so one seed always gives the same rows.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backend.feedback.models import ReactionKind
from backend.library.models import TrackStatus
from backend.library.titles import normalize_title
from backend.models import (
    Analysis,
    Band,
    BandMember,
    Comment,
    Reaction,
    RehearsalSession,
    Track,
    TrackVersion,
    User,
)

CHUNK = 5_000  # rows per executemany: big enough to be fast, small enough for any driver
MEMBERS = 4
SESSIONS = 200
TAKES_PER_TRACK = 3
COMMENTS_PER_TAKE = 2
FIRST_SESSION_DAY = date(2022, 1, 3)

STATUSES = list(TrackStatus)
KINDS = list(ReactionKind)
KEYS = ["A", "Bb", "B", "C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab"]
ADJECTIVES = ["blue", "broken", "electric", "slow", "quiet", "loud", "velvet", "hollow"]
ADJECTIVES += ["golden", "restless", "midnight", "paper", "crooked", "lazy", "neon", "wild"]
NOUNS = ["groove", "riff", "ballad", "shuffle", "waltz", "anthem", "jam", "drift", "echo"]
NOUNS += ["fever", "highway", "river", "engine", "garden", "mirror", "signal", "thunder"]
PHRASES = (
    "tight",
    "drums rush here",
    "love this fill",
    "bass a bit loud",
    "great take",
    "tempo drops after the bridge",
    "keep this intro",
    "vocals pitchy",
)

Rows = list[dict[str, Any]]


@dataclass
class Seeded:
    band_id: int
    viewer_id: int
    rows: dict[str, int]
    seconds: float


@dataclass
class _Library:
    """The tracks and everything hanging off them; an id is its row's position + 1."""

    session_days: list[date]
    user_ids: list[int]
    now: datetime
    tracks: Rows = field(default_factory=list)
    versions: Rows = field(default_factory=list)
    analyses: Rows = field(default_factory=list)
    comments: Rows = field(default_factory=list)
    reactions: Rows = field(default_factory=list)


def _utc(day: date, minutes: int) -> datetime:
    return datetime(day.year, day.month, day.day, 19, tzinfo=UTC) + timedelta(minutes=minutes)


def _add_take(
    lib: _Library, rng: random.Random, *, track_id: int, number: int, session_index: int, key: str
) -> tuple[datetime, datetime]:
    """A take with its analysis, comments and one reaction: (recorded, last commented)."""
    version_id = len(lib.versions) + 1
    day = lib.session_days[session_index]
    recorded = _utc(day, rng.randrange(240))
    duration = rng.randrange(60_000, 600_000)
    lib.versions.append(
        {
            "id": version_id,
            "band_id": 1,
            "track_id": track_id,
            "session_id": session_index + 1,
            "number": number,
            "label": f"Take {number}",
            "path": f"bands/bench/{day:%y%m%d}/track{track_id}/take{number}.wav",
            "original_filename": f"take{number}.wav",
            "format": "wav",
            "size_bytes": duration * 176,
            "duration_ms": duration,
            "sample_rate": 44_100,
            "channels": 2,
            "bitrate": 1_411_200,
            "status": "READY",
            "recorded_at": recorded,
            "created_at": recorded,
        }
    )
    lib.analyses.append(
        {
            "id": version_id,
            "version_id": version_id,
            "bpm": round(rng.uniform(70, 180), 1),
            "bpm_confidence": round(rng.random(), 2),
            "key": key.rstrip("m"),
            "scale": "minor" if key.endswith("m") else "major",
            "key_strength": round(rng.random(), 2),
            "loudness_lufs": round(rng.uniform(-30, -8), 1),
            "loudness_range_lu": round(rng.uniform(2, 15), 1),
            "true_peak_dbtp": round(rng.uniform(-6, 0), 1),
            "analyzed_at": recorded + timedelta(minutes=5),
        }
    )
    commented = []
    for _ in range(COMMENTS_PER_TAKE):
        at = recorded + timedelta(hours=rng.randrange(1, 72))
        lib.comments.append(
            {
                "id": len(lib.comments) + 1,
                "band_id": 1,
                "version_id": version_id,
                "author_id": rng.choice(lib.user_ids),
                "body": rng.choice(PHRASES),
                "at_ms": rng.randrange(duration),
                "created_at": at,
            }
        )
        commented.append(at)
    _add_reaction(lib, rng, "VERSION", version_id, rng.choice(lib.user_ids))
    return recorded, max(commented)


def _add_reaction(
    lib: _Library, rng: random.Random, target_type: str, target_id: int, user_id: int
) -> None:
    lib.reactions.append(
        {
            "id": len(lib.reactions) + 1,
            "band_id": 1,
            "user_id": user_id,
            "target_type": target_type,
            "target_id": target_id,
            "kind": rng.choice(KINDS).value,
        }
    )


def _add_track(lib: _Library, rng: random.Random, track_id: int) -> None:
    title = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {track_id:05d}"
    if track_id % 7 == 0:  # some titles as file names spell them
        title = title.replace(" ", "_")
    key = f"{rng.choice(KEYS)}{rng.choice(['', 'm'])}"
    picked = sorted(rng.sample(range(SESSIONS), TAKES_PER_TRACK))
    takes = [
        _add_take(lib, rng, track_id=track_id, number=number, session_index=index, key=key)
        for number, index in enumerate(picked, start=1)
    ]
    # Two different members, so (user, target, kind) stays unique whatever the kinds.
    for user_id in rng.sample(lib.user_ids, 2):
        _add_reaction(lib, rng, "TRACK", track_id, user_id)
    lib.tracks.append(
        {
            "id": track_id,
            "band_id": 1,
            "title": title,
            "normalized_title": normalize_title(title),
            "status": rng.choice(STATUSES).value,
            "bpm": round(rng.uniform(70, 180), 1),
            "key": key,
            "last_recorded_at": takes[-1][0],
            "last_commented_at": max(last for _, last in takes),
            "created_at": lib.now,
        }
    )


async def _insert(
    connection: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]
) -> None:
    # Core executemany in chunks: one prepared statement, many parameter sets (no ORM).
    for start in range(0, len(rows), CHUNK):
        await connection.execute(table.insert(), list(rows[start : start + CHUNK]))


async def _insert_all(engine: AsyncEngine, plan: list[tuple[Table, Rows]]) -> None:
    async with engine.begin() as connection:
        for table, rows in plan:
            await _insert(connection, table, rows)
        if connection.dialect.name == "postgresql":
            # Explicit ids leave the id sequences behind; move them on as a real app would.
            for table, _ in plan:
                await connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"(SELECT max(id) FROM {table.name}))"
                    )
                )
    # Planner statistics, as autovacuum (PostgreSQL) or `PRAGMA optimize` would have them.
    async with engine.begin() as connection:
        await connection.execute(text("ANALYZE"))


async def seed(engine: AsyncEngine, *, tracks: int, rng: random.Random) -> Seeded:
    """One band (id 1), MEMBERS members (user 1 is the admin and the viewer), SESSIONS
    rehearsal sessions and `tracks` tracks with their takes, analyses, comments, reactions."""
    started = time.perf_counter()
    users: Rows = [
        {"id": i, "handle": f"member{i}", "email": f"member{i}@bench.test", "display_name": f"M{i}"}
        for i in range(1, MEMBERS + 1)
    ]
    band = {"id": 1, "slug": "the-benchmarks", "name": "The Benchmarks"}
    members = [
        {"id": i, "band_id": 1, "user_id": i, "role": "ADMIN" if i == 1 else "MEMBER"}
        for i in range(1, MEMBERS + 1)
    ]
    lib = _Library(
        session_days=[FIRST_SESSION_DAY + timedelta(days=4 * i) for i in range(SESSIONS)],
        user_ids=[user["id"] for user in users],
        now=datetime.now(UTC),
    )
    sessions = [
        {"id": i + 1, "band_id": 1, "date": day, "label": None}
        for i, day in enumerate(lib.session_days)
    ]
    for track_id in range(1, tracks + 1):
        _add_track(lib, rng, track_id)
    plan: list[tuple[Table, Rows]] = [
        (User.__table__, users),  # type: ignore[list-item]
        (Band.__table__, [band]),  # type: ignore[list-item]
        (BandMember.__table__, members),  # type: ignore[list-item]
        (RehearsalSession.__table__, sessions),  # type: ignore[list-item]
        (Track.__table__, lib.tracks),  # type: ignore[list-item]
        (TrackVersion.__table__, lib.versions),  # type: ignore[list-item]
        (Analysis.__table__, lib.analyses),  # type: ignore[list-item]
        (Comment.__table__, lib.comments),  # type: ignore[list-item]
        (Reaction.__table__, lib.reactions),  # type: ignore[list-item]
    ]
    await _insert_all(engine, plan)
    return Seeded(
        band_id=1,
        viewer_id=1,
        rows={table.name: len(rows) for table, rows in plan},
        seconds=time.perf_counter() - started,
    )
