"""What the band says about a take: timestamped, threaded comments and reactions."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.database import Base, BigId, UTCDateTime, utcnow


class ReactionKind(enum.StrEnum):
    LIKE = "LIKE"
    LOVE = "LOVE"
    FIRE = "FIRE"
    LAUGH = "LAUGH"
    WOW = "WOW"
    SAD = "SAD"


class ReactionTarget(enum.StrEnum):
    TRACK = "TRACK"
    VERSION = "VERSION"
    COMMENT = "COMMENT"


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (
        Index("ix_comments_version_id_at_ms", "version_id", "at_ms"),
        Index("ix_comments_parent_id", "parent_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("track_versions.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)
    at_ms: Mapped[int | None] = mapped_column(Integer)
    end_ms: Mapped[int | None] = mapped_column(Integer)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Soft delete: a deleted comment that has replies stays in the thread as a tombstone.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Reaction(Base):
    __tablename__ = "reactions"
    __table_args__ = (
        UniqueConstraint("user_id", "target_type", "target_id", "kind"),
        Index("ix_reactions_target", "target_type", "target_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    target_type: Mapped[ReactionTarget] = mapped_column(
        Enum(ReactionTarget, native_enum=False, length=16)
    )
    target_id: Mapped[int] = mapped_column(BigId)
    kind: Mapped[ReactionKind] = mapped_column(Enum(ReactionKind, native_enum=False, length=16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
