"""Build rows directly through the services, for what GraphQL cannot create yet
(versions come from scans and uploads) and for large fixtures."""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.graphql.relay import parse_global_id
from backend.library import service as library_service
from backend.library.models import TrackVersion


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
