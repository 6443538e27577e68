"""Who is calling: the ``Authorization: Bearer`` value of a request (or of a websocket's
connection_init) turned into a Caller.

Two kinds of bearer token arrive there. A short-lived access token (a JWT from a login)
is checked by its signature alone. A personal API token (``blt_…``) is looked up by its
hash, so that revoking it takes effect on the next request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts import api_tokens, tokens
from backend.accounts.models import ApiToken
from backend.core.database import utcnow
from backend.core.errors import Unauthenticated
from backend.core.settings import Settings

# last_used_at is for people ("used 3 days ago"): one write a minute per token is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Caller:
    user_id: int
    api_token_id: int | None = None  # None: a person's login (an access token)
    scopes: frozenset[str] = api_tokens.ALL_SCOPES
    persisted_only: bool = False

    @property
    def is_api_token(self) -> bool:
        return self.api_token_id is not None

    @property
    def rate_limit_key(self) -> str:
        """Whose budget a request spends: an integration's token has its own."""
        return f"token:{self.api_token_id}" if self.is_api_token else f"user:{self.user_id}"


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value; None when there is none."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Send the access token as 'Authorization: Bearer <token>'.")
    return token.strip()


def from_access_token(token: str, *, settings: Settings) -> Caller:
    return Caller(user_id=tokens.decode_access_token(token, settings=settings))


async def authenticate(
    header: str | None,
    *,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
) -> Caller | None:
    """The caller of a request; None when it sent no token, UNAUTHENTICATED for a bad one."""
    token = bearer_token(header)
    if token is None:
        return None
    if not api_tokens.looks_like_api_token(token):
        return from_access_token(token, settings=settings)
    async with session_factory() as db_session:
        row = await api_tokens.find_usable(db_session=db_session, secret=token)
        if row is None:
            raise Unauthenticated("The API token is not valid (revoked, expired or unknown).")
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
            await db_session.execute(
                update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
            )
            await db_session.commit()
        return Caller(
            user_id=row.user_id,
            api_token_id=row.id,
            scopes=frozenset(row.scopes or api_tokens.ALL_SCOPES),
            persisted_only=row.persisted_only,
        )
