"""One-time login codes: what the OAuth callback puts in the SPA's URL instead of tokens.

A code is good once, for two minutes; only its sha256 is stored. Its token pair starts a
refresh-token family named after the code, so a code presented a second time (it leaked,
and someone raced the SPA to it) signs out whoever traded it first."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts import tokens
from backend.accounts.models import LoginCode, RefreshToken, User
from backend.core.database import utcnow
from backend.core.errors import Unauthenticated
from backend.core.settings import Settings

LIFETIME = timedelta(minutes=2)
LOGIN, LINK = "login", "link"  # what a code is for: see LoginCode.purpose
# Used and expired codes are kept a while, so a late replay still revokes its family.
KEEP = timedelta(hours=1)
_FAMILY_NAMESPACE = uuid.UUID("5b0f8f0e-6a52-4d3e-9c43-7d1f4d6c2b9a")


class LoginCodeInvalid(Unauthenticated):
    """Unknown or expired code."""


class LoginCodeReused(LoginCodeInvalid):
    """A used code came back; revoke its family (``revoke_family``) and commit that."""

    def __init__(self, message: str, *, family_id: str) -> None:
        super().__init__(message)
        self.family_id = family_id


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _family_of(code_hash: str) -> str:
    return str(uuid.uuid5(_FAMILY_NAMESPACE, code_hash))


async def create(
    *,
    db_session: AsyncSession,
    user_id: int,
    provider: str,
    purpose: str = LOGIN,
    lifetime: timedelta = LIFETIME,
) -> str:
    """A new code for ``user_id``; the secret is returned, its hash stored."""
    now = utcnow()
    await db_session.execute(delete(LoginCode).where(LoginCode.expires_at < now - KEEP))
    code = secrets.token_urlsafe(32)
    db_session.add(
        LoginCode(
            user_id=user_id,
            code_hash=_hash(code),
            provider=provider,
            purpose=purpose,
            expires_at=now + lifetime,
        )
    )
    await db_session.flush()
    return code


async def consume(
    *, db_session: AsyncSession, code: str, purpose: str, provider: str | None = None
) -> LoginCode | None:
    """The unused, unexpired code of this purpose (and provider), now used; None if not."""
    stored = await db_session.scalar(
        select(LoginCode)
        .where(LoginCode.code_hash == _hash(code), LoginCode.purpose == purpose)
        .with_for_update()
    )
    now = utcnow()
    if (
        stored is None
        or stored.used_at is not None
        or stored.expires_at <= now
        or (provider is not None and stored.provider != provider)
    ):
        return None
    stored.used_at = now
    return stored


async def exchange(*, db_session: AsyncSession, code: str, settings: Settings) -> tokens.TokenPair:
    """Trade a code for a token pair (a new refresh-token family); the code is dead after."""
    now = utcnow()
    code_hash = _hash(code)
    # FOR UPDATE: two concurrent exchanges of one code must not both succeed.
    stored = await db_session.scalar(
        select(LoginCode)
        .where(LoginCode.code_hash == code_hash, LoginCode.purpose == LOGIN)
        .with_for_update()
    )
    if stored is None or (stored.used_at is None and stored.expires_at <= now):
        raise LoginCodeInvalid("The sign-in code is not valid or has expired; sign in again.")
    if stored.used_at is not None:
        raise LoginCodeReused(
            "The sign-in code was used already; sign in again.", family_id=_family_of(code_hash)
        )
    stored.used_at = now
    user = await db_session.get(User, stored.user_id)
    if user is None:
        raise LoginCodeInvalid("The account no longer exists.")
    return await tokens.issue(
        db_session=db_session, user=user, settings=settings, family_id=_family_of(code_hash)
    )


async def revoke_family(*, db_session: AsyncSession, family_id: str) -> None:
    """Sign out the login a reused code started."""
    await db_session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
