"""Stored bytes (assets), what the analysis found, and derived files for streaming."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.database import Base, BigId, UTCDateTime, utcnow


class Asset(Base):
    """Content-addressed: the same bytes are stored once, whoever uploads them."""

    __tablename__ = "assets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigId)
    mime: Mapped[str] = mapped_column(String(100))
    storage_key: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Analysis(Base):
    __tablename__ = "analyses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("track_versions.id", ondelete="CASCADE"), unique=True
    )
    bpm: Mapped[float | None] = mapped_column(Float)
    bpm_confidence: Mapped[float | None] = mapped_column(Float)
    key: Mapped[str | None] = mapped_column(String(8))
    scale: Mapped[str | None] = mapped_column(String(8))
    key_strength: Mapped[float | None] = mapped_column(Float)
    loudness_lufs: Mapped[float | None] = mapped_column(Float)
    loudness_range_lu: Mapped[float | None] = mapped_column(Float)
    true_peak_dbtp: Mapped[float | None] = mapped_column(Float)
    # The audiowaveform v2 documents, one per zoom level, finest first:
    # {"sample_rate", "channels", "bits", "levels": [{"samples_per_pixel", "length",
    # "key"}]}; the peaks themselves are JSON files in storage (``key``).
    waveform_meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    waveform_asset_id: Mapped[int | None] = mapped_column(
        ForeignKey("assets.id", ondelete="SET NULL")
    )
    analyzed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Rendition(Base):
    __tablename__ = "renditions"
    __table_args__ = (UniqueConstraint("version_id", "format"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("track_versions.id", ondelete="CASCADE"))
    format: Mapped[str] = mapped_column(String(20))  # "mp3", "hls"
    storage_key: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PendingUpload(Base):
    """A browser's multipart upload straight to S3, from createUpload until it is
    completed (a version is made) or aborted; it remembers who may finish it and how."""

    __tablename__ = "pending_uploads"
    __table_args__ = (Index("ix_pending_uploads_band_id", "band_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id", ondelete="CASCADE"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    storage_key: Mapped[str] = mapped_column(String(500), unique=True)
    upload_id: Mapped[str] = mapped_column(String(1000))
    filename: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(BigId)
    part_size: Mapped[int] = mapped_column(BigId)
    track_id: Mapped[int | None] = mapped_column(ForeignKey("tracks.id", ondelete="SET NULL"))
    session_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
