"""Read-side statements for the library: track filters and orders, list orders."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from sqlalchemy import ColumnElement, Select, and_, exists, func, not_, select

from backend.feedback.models import Comment
from backend.library.models import RehearsalSession, Track, TrackStatus, TrackTag, TrackVersion


class TrackOrder(enum.StrEnum):
    TITLE = "TITLE"
    RECENTLY_RECORDED = "RECENTLY_RECORDED"
    RECENTLY_COMMENTED = "RECENTLY_COMMENTED"


@dataclass(frozen=True)
class TrackFilter:
    """Hashable, so that a request's loaders can be shared per filter."""

    query: str | None = None
    tags: tuple[str, ...] = ()
    key: str | None = None
    bpm_min: float | None = None
    bpm_max: float | None = None
    session_id: int | None = None
    unattributed: bool | None = None
    statuses: tuple[TrackStatus, ...] = ()


def tracks(track_filter: TrackFilter) -> Select[tuple[Track]]:
    """A band's tracks that pass the filter (the caller adds the band)."""
    statement = select(Track)
    conditions: list[ColumnElement[bool]] = []
    if track_filter.query:
        conditions.append(
            func.lower(Track.title).contains(track_filter.query.lower(), autoescape=True)
        )
    for tag in track_filter.tags:
        conditions.append(
            exists().where(TrackTag.track_id == Track.id, TrackTag.tag == tag.lower())
        )
    if track_filter.key:
        conditions.append(func.lower(Track.key) == track_filter.key.strip().lower())
    if track_filter.bpm_min is not None:
        conditions.append(Track.bpm >= track_filter.bpm_min)
    if track_filter.bpm_max is not None:
        conditions.append(Track.bpm <= track_filter.bpm_max)
    if track_filter.session_id is not None:
        conditions.append(
            exists().where(
                TrackVersion.track_id == Track.id,
                TrackVersion.session_id == track_filter.session_id,
            )
        )
    if track_filter.unattributed is not None:
        loose = exists().where(TrackVersion.track_id == Track.id, TrackVersion.session_id.is_(None))
        conditions.append(loose if track_filter.unattributed else not_(loose))
    if track_filter.statuses:
        conditions.append(Track.status.in_(track_filter.statuses))
    return statement.where(and_(*conditions)) if conditions else statement


def track_order(order: TrackOrder) -> list[ColumnElement[object]]:
    if order == TrackOrder.RECENTLY_RECORDED:
        return [Track.last_recorded_at.desc().nulls_last(), Track.id.desc()]
    if order == TrackOrder.RECENTLY_COMMENTED:
        return [Track.last_commented_at.desc().nulls_last(), Track.id.desc()]
    return [Track.normalized_title, Track.id]


def sessions(date_from: date | None, date_to: date | None) -> Select[tuple[RehearsalSession]]:
    statement = select(RehearsalSession)
    if date_from:
        statement = statement.where(RehearsalSession.date >= date_from)
    if date_to:
        statement = statement.where(RehearsalSession.date <= date_to)
    return statement


SESSION_ORDER = [RehearsalSession.date.desc(), RehearsalSession.id.desc()]
# Newest take first.
TRACK_VERSION_ORDER = [TrackVersion.number.desc()]
SESSION_VERSION_ORDER = [TrackVersion.created_at, TrackVersion.id]


def live_comment_count_by_track() -> Select[tuple[int, int]]:
    return (
        select(TrackVersion.track_id, func.count(Comment.id))
        .join(Comment, Comment.version_id == TrackVersion.id)
        .where(Comment.deleted_at.is_(None))
        .group_by(TrackVersion.track_id)
    )
