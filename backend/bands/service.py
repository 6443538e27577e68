"""Bands, membership and invites."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.tokens import hash_token
from backend.bands.access import BandAccess
from backend.bands.models import Band, BandInvite, BandMember, BandRole
from backend.core import validation
from backend.core.database import utcnow
from backend.core.errors import AlreadyExists, BadUserInput, NotFound


async def create(
    *, db_session: AsyncSession, access: BandAccess, name: str, slug: str | None = None
) -> Band:
    """A new band with its creator as admin."""
    user_id = access.require_user()
    clean_name = validation.text(name, field="name", max_length=100)
    clean_slug = validation.slug(slug) if slug else validation.slugify(clean_name)
    if not clean_slug:
        raise BadUserInput("Give the band a slug of letters and digits.", field="slug")
    if await db_session.scalar(select(Band.id).where(Band.slug == clean_slug)):
        raise AlreadyExists(f"The slug '{clean_slug}' is taken.", field="slug")
    band = Band(name=clean_name, slug=clean_slug)
    db_session.add(band)
    await db_session.flush()
    db_session.add(BandMember(band_id=band.id, user_id=user_id, role=BandRole.ADMIN))
    await db_session.flush()
    return band


async def update(
    *, db_session: AsyncSession, access: BandAccess, band_id: int, name: str | None
) -> Band:
    """Rename a band (admins)."""
    access.require_admin(band_id, what="band", action="rename the band")
    band = await db_session.get(Band, band_id)
    if band is None:
        raise NotFound("band")
    if name is not None:
        band.name = validation.text(name, field="name", max_length=100)
    return band


async def get_by_slug(*, db_session: AsyncSession, slug: str) -> Band | None:
    """One band by slug, whoever asks (callers check access)."""
    cleaned = slug.strip().lower()
    if not validation.is_slug(cleaned):
        return None  # no band has it, and the database need not be asked
    return await db_session.scalar(select(Band).where(Band.slug == cleaned))


async def list_slugs(*, db_session: AsyncSession) -> list[str]:
    """Every band's slug, alphabetically, whoever asks (the `backline` command's hints)."""
    return list(await db_session.scalars(select(Band.slug).order_by(Band.slug)))


async def create_invite(
    *,
    db_session: AsyncSession,
    access: BandAccess,
    band_id: int,
    role: BandRole,
    valid_for: timedelta,
) -> str:
    """An invite token (shown once, stored hashed) that admits anyone holding it."""
    access.require_admin(band_id, what="band", action="invite people")
    token = secrets.token_urlsafe(24)
    db_session.add(
        BandInvite(
            band_id=band_id,
            token_hash=hash_token(token),
            role=role,
            created_by_id=access.user_id,
            expires_at=utcnow() + valid_for,
        )
    )
    await db_session.flush()
    return token


async def accept_invite(*, db_session: AsyncSession, access: BandAccess, token: str) -> Band:
    """Join the invite's band; joining a band one is in already changes nothing."""
    user_id = access.require_user()
    invite = await db_session.scalar(
        select(BandInvite).where(BandInvite.token_hash == hash_token(token.strip()))
    )
    if invite is None or invite.expires_at <= utcnow():
        raise BadUserInput("This invite is not valid or has expired.", field="token")
    if not access.can_view(invite.band_id):
        db_session.add(BandMember(band_id=invite.band_id, user_id=user_id, role=invite.role))
        await db_session.flush()
    band = await db_session.get(Band, invite.band_id)
    assert band is not None  # the invite's foreign key cascades on delete
    return band


async def set_member_role(
    *, db_session: AsyncSession, access: BandAccess, band_id: int, user_id: int, role: BandRole
) -> BandMember:
    """Make a member admin or not (admins); a band always keeps one admin."""
    access.require_admin(band_id, what="band", action="change roles")
    member = await _member(db_session=db_session, band_id=band_id, user_id=user_id)
    if member.role == BandRole.ADMIN and role != BandRole.ADMIN:
        await _ensure_another_admin(db_session=db_session, band_id=band_id)
    member.role = role
    return member


async def remove_member(
    *, db_session: AsyncSession, access: BandAccess, band_id: int, user_id: int
) -> None:
    """Leave a band, or (admins) remove someone; the last admin cannot go."""
    if user_id != access.require_user():
        access.require_admin(band_id, what="band", action="remove members")
    else:
        access.require_member(band_id, what="band")
    member = await _member(db_session=db_session, band_id=band_id, user_id=user_id)
    if member.role == BandRole.ADMIN:
        await _ensure_another_admin(db_session=db_session, band_id=band_id)
    await db_session.delete(member)
    await db_session.flush()


async def _member(*, db_session: AsyncSession, band_id: int, user_id: int) -> BandMember:
    member = await db_session.scalar(
        select(BandMember).where(BandMember.band_id == band_id, BandMember.user_id == user_id)
    )
    if member is None:
        raise NotFound("band member")
    return member


async def _ensure_another_admin(*, db_session: AsyncSession, band_id: int) -> None:
    admins = await db_session.scalar(
        select(func.count())
        .select_from(BandMember)
        .where(BandMember.band_id == band_id, BandMember.role == BandRole.ADMIN)
    )
    if (admins or 0) < 2:
        raise BadUserInput("A band needs at least one admin; make someone else admin first.")
