"""Where recordings come from (sources), when they were made (rehearsal sessions),
what song they are (tracks) and each take of it (track versions)."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.database import Base, BigId, UTCDateTime, utcnow


class SourceKind(enum.StrEnum):
    LOCAL_FOLDER = "LOCAL_FOLDER"
    WEBDAV = "WEBDAV"


class TrackStatus(enum.StrEnum):
    IDEA = "IDEA"
    WORK_IN_PROGRESS = "WORK_IN_PROGRESS"
    READY = "READY"
    ARCHIVED = "ARCHIVED"


class VersionStatus(enum.StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    READY = "READY"
    FAILED = "FAILED"
    MISSING = "MISSING"


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id", ondelete="CASCADE"), index=True)
    kind: Mapped[SourceKind] = mapped_column(Enum(SourceKind, native_enum=False, length=16))
    name: Mapped[str] = mapped_column(String(100))
    root: Mapped[str] = mapped_column(String(2000))
    username: Mapped[str | None] = mapped_column(String(200))
    password_encrypted: Mapped[str | None] = mapped_column(Text)
    watch: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SourceFolder(Base):
    """A collection's etag at the last scan: an unchanged one is not walked again."""

    __tablename__ = "source_folders"
    __table_args__ = (UniqueConstraint("source_id", "path"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(2000))
    etag: Mapped[str] = mapped_column(String(200))


class RehearsalSession(Base):
    __tablename__ = "rehearsal_sessions"
    __table_args__ = (UniqueConstraint("band_id", "date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id", ondelete="CASCADE"))
    date: Mapped[date] = mapped_column(Date)
    label: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Track(Base):
    __tablename__ = "tracks"
    __table_args__ = (
        UniqueConstraint("band_id", "normalized_title"),
        Index("ix_tracks_band_id_last_recorded_at", "band_id", "last_recorded_at"),
        Index("ix_tracks_band_id_last_commented_at", "band_id", "last_commented_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    # Track identity within a band: "Groove ", "groove" and "GROOVE" are one song.
    normalized_title: Mapped[str] = mapped_column(String(200))
    status: Mapped[TrackStatus] = mapped_column(
        Enum(TrackStatus, native_enum=False, length=24), default=TrackStatus.WORK_IN_PROGRESS
    )
    # The value shown: a person's, else the first analysis. The flags say a person set it,
    # so a later analysis must not overwrite it.
    bpm: Mapped[float | None] = mapped_column(Float)
    bpm_set_by_person: Mapped[bool] = mapped_column(Boolean, default=False)
    key: Mapped[str | None] = mapped_column(String(20))
    key_set_by_person: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[str | None] = mapped_column(Text)
    # Kept up to date by the services so that ordering 10,000 tracks needs no aggregate.
    last_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_commented_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrackTag(Base):
    __tablename__ = "track_tags"

    track_id: Mapped[int] = mapped_column(
        ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(50), primary_key=True, index=True)


class TrackVersion(Base):
    __tablename__ = "track_versions"
    __table_args__ = (
        UniqueConstraint("source_id", "path"),
        UniqueConstraint("track_id", "number"),
        Index("ix_track_versions_session_id", "session_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Denormalised from the track so that every permission check is one column.
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id", ondelete="CASCADE"), index=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"))
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("rehearsal_sessions.id", ondelete="SET NULL")
    )
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"))
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"))
    number: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(200))
    path: Mapped[str | None] = mapped_column(String(2000))
    original_filename: Mapped[str] = mapped_column(String(500))
    # Local: "size:mtime_ns:ctime_ns"; WebDAV: the etag. Tells a changed file from an unchanged.
    change_marker: Mapped[str | None] = mapped_column(String(200))
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    format: Mapped[str | None] = mapped_column(String(20))
    # What the probe found: the audio codec, the file's own tags (title, artist, album,
    # date) and its cover art, if it has one.
    codec: Mapped[str | None] = mapped_column(String(32))
    embedded_tags: Mapped[dict[str, str] | None] = mapped_column(JSON)
    cover_asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"))
    size_bytes: Mapped[int | None] = mapped_column(BigId)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    bitrate: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[VersionStatus] = mapped_column(
        Enum(VersionStatus, native_enum=False, length=16), default=VersionStatus.PENDING
    )
    failure_reason: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
