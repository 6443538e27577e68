"""Access tokens (short-lived JWTs) and refresh tokens (opaque, rotating, in families).

A refresh token is good for exactly one refresh. Presenting one that was already used
means it leaked: the whole family (every token from that login) is revoked."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import RefreshToken, User
from backend.core.database import utcnow
from backend.core.errors import Unauthenticated
from backend.core.settings import Settings

ALGORITHM = "HS256"
AUDIENCE = "backline"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_at: datetime  # of the access token
    user: User


class RefreshTokenReused(Unauthenticated):
    """A used refresh token came back; its family has been revoked (commit that!)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_access_token(*, user_id: int, settings: Settings) -> tuple[str, datetime]:
    now = utcnow()
    expires_at = now + timedelta(minutes=settings.access_token_minutes)
    claims = {"sub": str(user_id), "iat": now, "exp": expires_at, "aud": AUDIENCE}
    return jwt.encode(claims, settings.resolved_secret_key, algorithm=ALGORITHM), expires_at


def decode_access_token(token: str, *, settings: Settings) -> int:
    """The user id in a valid access token; UNAUTHENTICATED otherwise."""
    try:
        claims = jwt.decode(
            token,
            settings.resolved_secret_key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["exp", "sub"]},
        )
        return int(claims["sub"])
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("Your session has expired; refresh it or sign in again.") from exc
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise Unauthenticated("The access token is not valid.") from exc


async def issue(
    *, db_session: AsyncSession, user: User, settings: Settings, family_id: str | None = None
) -> TokenPair:
    """A new access token and a refresh token (a new family unless one is given)."""
    refresh_token = secrets.token_urlsafe(32)
    db_session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id or str(uuid.uuid4()),
            token_hash=hash_token(refresh_token),
            expires_at=utcnow() + timedelta(days=settings.refresh_token_days),
        )
    )
    await db_session.flush()
    access_token, expires_at = create_access_token(user_id=user.id, settings=settings)
    return TokenPair(access_token, refresh_token, expires_at, user)


async def rotate(*, db_session: AsyncSession, refresh_token: str, settings: Settings) -> TokenPair:
    """Trade a refresh token for a new pair; the old token is dead afterwards."""
    now = utcnow()
    # FOR UPDATE: two concurrent refreshes with one token must not both succeed.
    stored = await db_session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == hash_token(refresh_token))
        .with_for_update()
    )
    if stored is None or stored.expires_at <= now:
        raise Unauthenticated("The refresh token is not valid; sign in again.")
    if stored.used_at is not None or stored.revoked_at is not None:
        await _revoke_family(db_session=db_session, family_id=stored.family_id, now=now)
        raise RefreshTokenReused("The refresh token was used before; sign in again.")
    stored.used_at = now
    user = await db_session.get(User, stored.user_id)
    if user is None:
        raise Unauthenticated("The account no longer exists.")
    return await issue(
        db_session=db_session, user=user, settings=settings, family_id=stored.family_id
    )


async def revoke(*, db_session: AsyncSession, refresh_token: str) -> bool:
    """Log out one login (the token's family); False when the token is unknown."""
    family_id = await db_session.scalar(
        select(RefreshToken.family_id).where(RefreshToken.token_hash == hash_token(refresh_token))
    )
    if family_id is None:
        return False
    await _revoke_family(db_session=db_session, family_id=family_id, now=utcnow())
    return True


async def revoke_all(*, db_session: AsyncSession, user_id: int) -> None:
    """Log a user out of every device."""
    await db_session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def _revoke_family(*, db_session: AsyncSession, family_id: str, now: datetime) -> None:
    await db_session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
