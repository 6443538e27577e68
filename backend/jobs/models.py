"""Background work the band can follow: a row per job, progress and counters on it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, Float, ForeignKey, Index, Integer, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.database import Base, BigId, UTCDateTime, utcnow


class JobKind(enum.StrEnum):
    SCAN = "SCAN"
    PROBE = "PROBE"
    ANALYZE = "ANALYZE"
    TRANSCODE = "TRANSCODE"
    IMPORT = "IMPORT"


class JobStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_band_id_created_at", "band_id", "created_at"),
        Index("ix_jobs_source_id", "source_id"),
        Index("ix_jobs_version_id", "version_id"),
        Index("ix_jobs_status", "status"),
        # At most one scan of a source waits or runs at a time, whoever asks and however
        # many api processes there are: the database says no to a second.
        Index(
            "uq_jobs_active_scan",
            "source_id",
            unique=True,
            sqlite_where=text("kind = 'SCAN' AND status IN ('QUEUED', 'RUNNING')"),
            postgresql_where=text("kind = 'SCAN' AND status IN ('QUEUED', 'RUNNING')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id", ondelete="CASCADE"))
    kind: Mapped[JobKind] = mapped_column(Enum(JobKind, native_enum=False, length=16))
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=16), default=JobStatus.QUEUED
    )
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"))
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("track_versions.id", ondelete="SET NULL")
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer)
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # [{"path": str | None, "message": str}], capped by the service.
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    message: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Outbox: the message is sent after the row commits; a row still without this after
    # a while had its message lost (crash, broker down) and the sweeper sends it again.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A running job's worker renews this every few seconds; when it stops (the worker
    # died, or the attempt failed) the job may be taken up again.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
