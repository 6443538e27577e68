"""Link tickets: a signed-in user's permission, carried through a browser redirect (which
cannot send the Authorization header), to link one provider to their account.

A ticket is a one-time code (a LoginCode of purpose "link", stored hashed) good for
minutes and for one provider. It is spent when the browser starts the link, so a link URL
that leaks afterwards (history, a proxy's log) links nothing; it never signs anyone in."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.oauth import codes
from backend.core.errors import BadUserInput

LIFETIME = timedelta(minutes=5)


class LinkTicketInvalid(BadUserInput):
    """The ticket is unknown, used, expired or for another provider."""


async def issue(*, db_session: AsyncSession, user_id: int, provider: str) -> str:
    """A ticket letting the browser that holds it link ``provider`` to ``user_id``, once."""
    return await codes.create(
        db_session=db_session,
        user_id=user_id,
        provider=provider,
        purpose=codes.LINK,
        lifetime=LIFETIME,
    )


async def consume(*, db_session: AsyncSession, ticket: str, provider: str) -> int:
    """The user id of a valid ticket for ``provider``, which is then spent."""
    stored = await codes.consume(
        db_session=db_session, code=ticket, purpose=codes.LINK, provider=provider
    )
    if stored is None:
        raise LinkTicketInvalid(
            "The link request has expired or was used already; start linking again from "
            "your settings.",
            field="link",
        )
    return stored.user_id
