"""Personal API tokens: what an integration (a DAW plug-in, a Discord bot, a script)
signs in with. The secret is shown once, at creation; only its sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import ApiToken
from backend.core import validation
from backend.core.database import utcnow
from backend.core.errors import BadUserInput, NotFound

# The prefix tells an API token from an access token (a JWT) without a database look-up,
# and lets secret scanners recognise a leaked one.
PREFIX = "blt_"
READ, WRITE = "read", "write"
ALL_SCOPES = frozenset({READ, WRITE})
MAX_ACTIVE_TOKENS = 50


@dataclass(frozen=True)
class CreatedToken:
    secret: str
    row: ApiToken


def looks_like_api_token(token: str) -> bool:
    return token.startswith(PREFIX)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_scopes(scopes: list[str] | None) -> list[str]:
    if scopes is None:
        return sorted(ALL_SCOPES)
    cleaned = {scope.strip().lower() for scope in scopes}
    if not cleaned or not cleaned <= ALL_SCOPES:
        raise BadUserInput(
            "Scopes are 'read' (queries and subscriptions) and 'write' (mutations too).",
            field="scopes",
        )
    return sorted(cleaned | {READ})  # whoever may change things may see them


async def create(
    *,
    db_session: AsyncSession,
    user_id: int,
    name: str,
    scopes: list[str] | None = None,
    persisted_only: bool = False,
    expires_at: datetime | None = None,
) -> CreatedToken:
    """A new token for the user; ``secret`` is the only time its value is known."""
    clean_name = validation.text(name, field="name", max_length=100)
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)  # a time without an offset is UTC
    if expires_at is not None and expires_at <= utcnow():
        raise BadUserInput("The expiry must be in the future.", field="expiresAt")
    active = await db_session.scalar(
        select(func.count()).select_from(ApiToken).where(_active(user_id))
    )
    if (active or 0) >= MAX_ACTIVE_TOKENS:
        raise BadUserInput(
            f"You have {MAX_ACTIVE_TOKENS} API tokens already; revoke one you no longer use."
        )
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user_id,
        name=clean_name,
        token_hash=_hash(secret),
        scopes=_check_scopes(scopes),
        persisted_only=persisted_only,
        expires_at=expires_at,
        created_at=utcnow(),
    )
    db_session.add(row)
    await db_session.flush()
    return CreatedToken(secret=secret, row=row)


async def revoke(*, db_session: AsyncSession, user_id: int, token_id: int) -> None:
    """Revoke one of the user's tokens; another user's token is NOT_FOUND."""
    row = await db_session.get(ApiToken, token_id)
    if row is None or row.user_id != user_id or row.revoked_at is not None:
        raise NotFound("API token")
    row.revoked_at = utcnow()


async def find_usable(*, db_session: AsyncSession, secret: str) -> ApiToken | None:
    """The token with this secret, unless it was revoked or has expired."""
    return await db_session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == _hash(secret),
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > utcnow()),
        )
    )


def _active(user_id: int) -> ColumnElement[bool]:
    return (ApiToken.user_id == user_id) & ApiToken.revoked_at.is_(None)
