"""Two sources of one band scanned at the same time, holding the same rehearsal folders
and the same song titles (a NAS and a laptop copy with different bytes): the unique keys
and insert-ignore upserts make one session per date and one track per title, never two,
and every take of both sources becomes a version. PostgreSQL is the case that matters
(real concurrent writers); SQLite, which takes one writer at a time, runs it too.

When the sessions and tracks exist already, both scans add takes to the same tracks:
their numbering is serialised by the band's lock (library_service.lock_numbering)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from backend.bands.models import Band
from backend.jobs import service as jobs_service
from backend.jobs import sweeper
from backend.jobs.models import Job, JobKind, JobStatus
from backend.library import service as library_service
from backend.library.models import RehearsalSession, Source, SourceKind, Track, TrackVersion
from backend.library.scanner import ScanContext, run_scan
from tests.audio_fixtures import write_wav

ROUNDS = 3
# The same dates and songs in both sources, spelled differently in places: 'Groove' and
# 'groove', 'Slow_Burn' and 'slow burn' are one track each.
NAS = [
    "231015/groove/take1.wav",
    "231015/groove/take2.wav",
    "231015/Slow_Burn/take1.wav",
    "231015/jam.wav",
    "231022/groove/take1.wav",
    "231022/Intro.wav",
]
LAPTOP = [
    "231015/groove/take1.wav",
    "231015/Groove/take3.wav",
    "231015/slow burn/take1.wav",
    "231015/jam.wav",
    "231022/groove/take1.wav",
    "231029/intro/take1.wav",
]


def _tree(folder: Path, files: list[str], *, seed: int) -> None:
    for index, relative in enumerate(files):
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        # Different bytes in each source, so no take is mistaken for a copy of another.
        write_wav(path, seconds=0.05, tone_hz=150 + seed * 37 + index * 11)


async def _band_with_sources(session_factory, folders: list[Path]) -> tuple[int, list[int]]:
    """A band, a LOCAL_FOLDER source per folder and a QUEUED scan job per source."""
    async with session_factory() as db_session:
        band = Band(slug=f"band-{uuid.uuid4().hex[:8]}", name="Twins")
        db_session.add(band)
        await db_session.flush()
        job_ids = []
        for number, folder in enumerate(folders):
            source = Source(
                band_id=band.id, kind=SourceKind.LOCAL_FOLDER, name=f"s{number}", root=str(folder)
            )
            db_session.add(source)
            await db_session.flush()
            job = await jobs_service.create(
                db_session=db_session, band_id=band.id, kind=JobKind.SCAN, source_id=source.id
            )
            job_ids.append(job.id)
        await db_session.commit()
        return band.id, job_ids


async def _no_events(_channel: str, _message: dict[str, Any]) -> None:
    pass


@pytest.fixture
async def own_jobs(monkeypatch, session_factory) -> AsyncIterator[None]:
    """The test runs its scans itself: the app's sweeper skips its rounds (it would send a
    crashed scan to the embedded workers), and whatever did not end is ended afterwards."""

    async def skip(**_kwargs: Any) -> int:
        return 0

    monkeypatch.setattr(sweeper, "sweep_once", skip)
    yield
    async with session_factory() as db_session:
        await db_session.execute(
            update(Job)
            .where(Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)))
            .values(status=JobStatus.CANCELLED)
        )
        await db_session.commit()


@pytest.mark.parametrize(
    "history",
    [
        "new band",
        "dates and songs known",
    ],
)
async def test_concurrent_scans_of_two_sources_make_no_duplicates(
    app_and_engine, session_factory, own_jobs, tmp_path, history
):
    app, _ = app_and_engine
    ctx = ScanContext(
        session_factory=session_factory, settings=app.state.settings, publish=_no_events
    )
    for round_ in range(ROUNDS):
        folders = [tmp_path / f"round{round_}" / name for name in ("nas", "laptop")]
        _tree(folders[0], NAS, seed=round_)
        _tree(folders[1], LAPTOP, seed=round_ + 100)
        band_id, job_ids = await _band_with_sources(session_factory, folders)
        if history == "dates and songs known":
            # Sessions and tracks from earlier (a person made them, or another source's
            # scan), but no takes yet: the takes of both scans land on the same rows.
            async with session_factory() as db_session:
                for day in (date(2023, 10, 15), date(2023, 10, 22), date(2023, 10, 29)):
                    await library_service.get_or_create_session(
                        db_session=db_session, band_id=band_id, session_date=day
                    )
                for title in ("groove", "slow burn", "jam", "intro"):
                    await library_service.get_or_create_track(
                        db_session=db_session, band_id=band_id, title=title
                    )
                await db_session.commit()

        outcomes = await asyncio.wait_for(
            asyncio.gather(*(run_scan(ctx, job_id) for job_id in job_ids), return_exceptions=True),
            30,
        )
        assert outcomes == [None, None], outcomes

        async with session_factory() as db_session:
            jobs = list(await db_session.scalars(select(Job).where(Job.id.in_(job_ids))))
            assert [(job.status, job.added, job.failed) for job in jobs] == [
                (JobStatus.SUCCEEDED, 6, 0),
                (JobStatus.SUCCEEDED, 6, 0),
            ], [job.message for job in jobs]
            dates = Counter(
                await db_session.scalars(
                    select(RehearsalSession.date).where(RehearsalSession.band_id == band_id)
                )
            )
            assert dates == {
                date(2023, 10, 15): 1,
                date(2023, 10, 22): 1,
                date(2023, 10, 29): 1,
            }
            titles = Counter(
                await db_session.scalars(
                    select(Track.normalized_title).where(Track.band_id == band_id)
                )
            )
            assert titles == {"groove": 1, "slow burn": 1, "jam": 1, "intro": 1}
            versions = (
                await db_session.execute(
                    select(Track.normalized_title, TrackVersion.number, TrackVersion.source_id)
                    .join(Track, Track.id == TrackVersion.track_id)
                    .where(TrackVersion.band_id == band_id)
                )
            ).all()
            assert len(versions) == len(NAS) + len(LAPTOP)
            assert sorted(Counter(source for _, _, source in versions).values()) == [6, 6]
            per_track = Counter(title for title, _, _ in versions)
            assert per_track == {"groove": 6, "slow burn": 2, "jam": 2, "intro": 2}
            # Each track's takes are numbered 1..n, whichever source they came from.
            for title, count in per_track.items():
                numbers = sorted(number for t, number, _ in versions if t == title)
                assert numbers == list(range(1, count + 1)), (title, numbers)
            per_session = dict(
                (
                    await db_session.execute(
                        select(RehearsalSession.date, func.count(TrackVersion.id))
                        .join(TrackVersion, TrackVersion.session_id == RehearsalSession.id)
                        .where(RehearsalSession.band_id == band_id)
                        .group_by(RehearsalSession.date)
                    )
                ).all()
            )
            assert per_session == {
                date(2023, 10, 15): 8,
                date(2023, 10, 22): 3,
                date(2023, 10, 29): 1,
            }
