"""Bands, who is in them and in what role, and the invites that bring people in."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.database import Base, BigId, UTCDateTime, utcnow


class BandRole(enum.StrEnum):
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"


role_enum = Enum(BandRole, name="band_role", native_enum=False, length=16)


class Band(Base):
    __tablename__ = "bands"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BandMember(Base):
    __tablename__ = "band_members"
    __table_args__ = (UniqueConstraint("band_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[BandRole] = mapped_column(role_enum)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BandInvite(Base):
    """A link a band admin shares; anyone holding it may join until it expires."""

    __tablename__ = "band_invites"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[BandRole] = mapped_column(role_enum)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
