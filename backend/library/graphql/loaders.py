"""The library's DataLoaders, one function each, made once per request on first use."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Select, distinct, func, select
from strawberry.dataloader import DataLoader

from backend.graphql.context import Context
from backend.graphql.dataloaders import (
    count_by_parent,
    groups_by_key,
    page_by_parent,
    rows_by_key,
    values_by_key,
)
from backend.graphql.relay import PageRequest
from backend.library import repository
from backend.library.models import RehearsalSession, Source, Track, TrackTag, TrackVersion
from backend.media.models import Analysis


def track(ctx: Context) -> DataLoader[int, Track | None]:
    return ctx.loaders.get("track", lambda: rows_by_key(ctx.db, Track))


def version(ctx: Context) -> DataLoader[int, TrackVersion | None]:
    return ctx.loaders.get("version", lambda: rows_by_key(ctx.db, TrackVersion))


def session(ctx: Context) -> DataLoader[int, RehearsalSession | None]:
    return ctx.loaders.get("session", lambda: rows_by_key(ctx.db, RehearsalSession))


def source(ctx: Context) -> DataLoader[int, Source | None]:
    return ctx.loaders.get("source", lambda: rows_by_key(ctx.db, Source))


def analysis_by_version(ctx: Context) -> DataLoader[int, Analysis | None]:
    return ctx.loaders.get(
        "analysis_by_version", lambda: rows_by_key(ctx.db, Analysis, Analysis.version_id)
    )


def tags_by_track(ctx: Context) -> DataLoader[int, list[Any]]:
    def statement(keys: Sequence[int]) -> Select[Any]:
        return (
            select(TrackTag.track_id, TrackTag.tag)
            .where(TrackTag.track_id.in_(keys))
            .order_by(TrackTag.tag)
        )

    return ctx.loaders.get(
        "tags_by_track",
        lambda: groups_by_key(ctx.db, statement, lambda row: row[0], scalars=False),
    )


def sources_by_band(ctx: Context) -> DataLoader[int, list[Source]]:
    def statement(keys: Sequence[int]) -> Select[Any]:
        return (
            select(Source)
            .where(Source.band_id.in_(keys), Source.removed_at.is_(None))
            .order_by(Source.name, Source.id)
        )

    return ctx.loaders.get(
        "sources_by_band", lambda: groups_by_key(ctx.db, statement, lambda row: row.band_id)
    )


def sessions_by_track(ctx: Context) -> DataLoader[int, list[Any]]:
    def statement(keys: Sequence[int]) -> Select[Any]:
        return (
            select(RehearsalSession, TrackVersion.track_id)
            .join(TrackVersion, TrackVersion.session_id == RehearsalSession.id)
            .where(TrackVersion.track_id.in_(keys))
            .distinct()
            .order_by(RehearsalSession.date.desc(), RehearsalSession.id)
        )

    return ctx.loaders.get(
        "sessions_by_track",
        lambda: groups_by_key(ctx.db, statement, lambda row: row[1], scalars=False),
    )


def latest_version_by_track(ctx: Context) -> DataLoader[int, list[TrackVersion]]:
    """A one-row page of each track's versions, newest first."""
    return ctx.loaders.get(
        "latest_version_by_track",
        lambda: page_by_parent(
            ctx.db,
            base=select(TrackVersion),
            entity=TrackVersion,
            parent=TrackVersion.track_id,
            order_by=repository.TRACK_VERSION_ORDER,
            page=PageRequest(offset=0, limit=0),
        ),
    )


def comment_count_by_track(ctx: Context) -> DataLoader[int, int]:
    def statement(keys: Sequence[int]) -> Select[Any]:
        return repository.live_comment_count_by_track().where(TrackVersion.track_id.in_(keys))

    return ctx.loaders.get("comment_count_by_track", lambda: values_by_key(ctx.db, statement, 0))


def version_count_by_session(ctx: Context) -> DataLoader[int, int]:
    return ctx.loaders.get(
        "version_count_by_session",
        lambda: count_by_parent(ctx.db, base=select(TrackVersion), parent=TrackVersion.session_id),
    )


def track_count_by_session(ctx: Context) -> DataLoader[int, int]:
    def statement(keys: Sequence[int]) -> Select[Any]:
        return (
            select(TrackVersion.session_id, func.count(distinct(TrackVersion.track_id)))
            .where(TrackVersion.session_id.in_(keys))
            .group_by(TrackVersion.session_id)
        )

    return ctx.loaders.get("track_count_by_session", lambda: values_by_key(ctx.db, statement, 0))


# Pages: one loader per list and arguments, shared by every parent asking alike.


def versions_of_track(ctx: Context, page: PageRequest) -> tuple[DataLoader, DataLoader]:
    base = select(TrackVersion)
    return (
        ctx.loaders.get(
            ("versions_of_track", page),
            lambda: page_by_parent(
                ctx.db,
                base=base,
                entity=TrackVersion,
                parent=TrackVersion.track_id,
                order_by=repository.TRACK_VERSION_ORDER,
                page=page,
            ),
        ),
        ctx.loaders.get(
            "versions_of_track_count",
            lambda: count_by_parent(ctx.db, base=base, parent=TrackVersion.track_id),
        ),
    )


def versions_of_session(ctx: Context, page: PageRequest) -> tuple[DataLoader, DataLoader]:
    base = select(TrackVersion)
    return (
        ctx.loaders.get(
            ("versions_of_session", page),
            lambda: page_by_parent(
                ctx.db,
                base=base,
                entity=TrackVersion,
                parent=TrackVersion.session_id,
                order_by=repository.SESSION_VERSION_ORDER,
                page=page,
            ),
        ),
        version_count_by_session(ctx),
    )


def tracks_of_band(
    ctx: Context,
    page: PageRequest,
    track_filter: repository.TrackFilter,
    order: repository.TrackOrder,
) -> tuple[DataLoader, DataLoader]:
    base = repository.tracks(track_filter)
    return (
        ctx.loaders.get(
            ("tracks_of_band", page, track_filter, order),
            lambda: page_by_parent(
                ctx.db,
                base=base,
                entity=Track,
                parent=Track.band_id,
                order_by=repository.track_order(order),
                page=page,
            ),
        ),
        ctx.loaders.get(
            ("tracks_of_band_count", track_filter),
            lambda: count_by_parent(ctx.db, base=base, parent=Track.band_id),
        ),
    )


def sessions_of_band(
    ctx: Context, page: PageRequest, date_from: date | None, date_to: date | None
) -> tuple[DataLoader, DataLoader]:
    base = repository.sessions(date_from, date_to)
    return (
        ctx.loaders.get(
            ("sessions_of_band", page, date_from, date_to),
            lambda: page_by_parent(
                ctx.db,
                base=base,
                entity=RehearsalSession,
                parent=RehearsalSession.band_id,
                order_by=repository.SESSION_ORDER,
                page=page,
            ),
        ),
        ctx.loaders.get(
            ("sessions_of_band_count", date_from, date_to),
            lambda: count_by_parent(ctx.db, base=base, parent=RehearsalSession.band_id),
        ),
    )
