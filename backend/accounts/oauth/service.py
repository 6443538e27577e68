"""Who a provider profile is here: find, create or link the user; unlink an identity.

Nothing here talks to a provider or knows of HTTP: a profile comes in already checked
(a verified email, a stable subject), a user goes out. Nothing commits either: the
callback commits the user, the identity and the login code together, or none of them."""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts import service as accounts_service
from backend.accounts.models import OAuthIdentity, User
from backend.core import validation
from backend.core.errors import BadUserInput, NotFound

HANDLE_MAX = 40


@dataclass(frozen=True)
class Profile:
    """Who the provider says signed in. ``email`` is verified by the provider, lower-cased."""

    provider: str
    subject: str
    email: str
    login: str | None = None  # GitHub's user name; the handle is made from it
    name: str | None = None
    avatar_url: str | None = None


class SignInRefused(BadUserInput):
    """A sign-in or link that must not happen; ``error`` is the code the SPA receives."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message, reason=error)
        self.error = error


async def sign_in(*, db_session: AsyncSession, profile: Profile) -> User:
    """The user this profile signs in: the one linked to it, else the account with its
    email (only when that email is verified), else a new account."""
    identity = await _identity(db_session=db_session, profile=profile)
    if identity is not None:
        identity.email = profile.email
        user = await db_session.get(User, identity.user_id)
        assert user is not None  # the foreign key cascades
        return user
    user = await accounts_service.get_by_email(db_session=db_session, email=profile.email)
    if user is None:
        user = await _create_user(db_session=db_session, profile=profile)
    elif not user.email_verified:
        # Anyone can register an email they do not own; linking to such an account would
        # hand it to whoever registered it, or hand it to the provider's user. Only the
        # account's owner, signed in with their password, may link.
        raise SignInRefused(
            "email_in_use",
            "An account with this email exists. Sign in with your password, then link "
            f"{_label(profile.provider)} in your account settings.",
        )
    await _add_identity(db_session=db_session, user=user, profile=profile)
    return user


async def link(*, db_session: AsyncSession, profile: Profile, user_id: int) -> User:
    """Link the profile to a signed-in user (who asked for it with a link ticket)."""
    user = await db_session.get(User, user_id, with_for_update=True)
    if user is None:
        raise SignInRefused("link_expired", "The account to link to no longer exists.")
    identity = await _identity(db_session=db_session, profile=profile)
    if identity is not None:
        if identity.user_id != user.id:
            raise SignInRefused(
                "identity_in_use",
                f"This {_label(profile.provider)} account is linked to another Backline "
                "account. Unlink it there first.",
            )
        identity.email = profile.email
        return user
    await _add_identity(db_session=db_session, user=user, profile=profile)
    if profile.email == user.email:
        user.email_verified = True  # the provider has just vouched for it
    return user


async def unlink(*, db_session: AsyncSession, user_id: int, provider: str) -> User:
    """Remove the user's identity at ``provider``, unless it is their last way in."""
    user = await db_session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound("user")
    identities = (
        await db_session.scalars(select(OAuthIdentity).where(OAuthIdentity.user_id == user.id))
    ).all()
    mine = [identity for identity in identities if identity.provider == provider]
    if not mine:
        raise NotFound("linked identity", field="provider")
    if user.password_hash is None and len(identities) == len(mine):
        raise BadUserInput(
            f"{_label(provider)} is your only way to sign in; link another provider "
            "before removing this one.",
            field="provider",
            reason="LAST_SIGN_IN_METHOD",
        )
    for identity in mine:
        await db_session.delete(identity)
    await db_session.flush()
    return user


async def has_identity(*, db_session: AsyncSession, user_id: int, provider: str) -> bool:
    """Whether the user has linked ``provider`` already."""
    found = await db_session.scalar(
        select(OAuthIdentity.id).where(
            OAuthIdentity.user_id == user_id, OAuthIdentity.provider == provider
        )
    )
    return found is not None


def handle_base(profile: Profile) -> str:
    """A handle from the profile (GitHub login, else the email's local part), slugged
    to the handle rule: lower-case letters, digits, '_' and '-', alphanumeric ends."""
    source = profile.login or profile.email.partition("@")[0]
    ascii_text = unicodedata.normalize("NFKD", source).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9_-]+", "-", ascii_text.lower())
    slug = re.sub(r"[-_]{2,}", "-", slug)[:HANDLE_MAX].strip("-_")
    return slug or "user"


async def _free_handle(*, db_session: AsyncSession, base: str) -> str:
    """``base``, else ``base-2``, ``base-3``, … (kept within 40 characters)."""
    candidates = [base] + [_suffixed(base, f"-{n}") for n in range(2, 21)]
    taken = set(
        (await db_session.scalars(select(User.handle).where(User.handle.in_(candidates)))).all()
    )
    for candidate in candidates:
        if candidate not in taken:
            return candidate
    return _suffixed(base, f"-{secrets.token_hex(4)}")  # a very popular name


def _suffixed(base: str, suffix: str) -> str:
    return base[: HANDLE_MAX - len(suffix)].rstrip("-_") + suffix


async def _create_user(*, db_session: AsyncSession, profile: Profile) -> User:
    user = User(
        email=profile.email,
        email_verified=True,  # the provider verified it
        handle=await _free_handle(db_session=db_session, base=handle_base(profile)),
        display_name=_clip(profile.name, 100),
        # Only a web address: the SPA puts it in an <img src>.
        avatar_url=_clip(profile.avatar_url, 2000)
        if (profile.avatar_url or "").startswith(("https://", "http://"))
        else None,
        password_hash=None,
    )
    db_session.add(user)
    await db_session.flush()
    return user


async def _add_identity(*, db_session: AsyncSession, user: User, profile: Profile) -> None:
    # One identity per provider and user, so unlinkIdentity(provider) means one thing.
    if await has_identity(db_session=db_session, user_id=user.id, provider=profile.provider):
        raise SignInRefused(
            "provider_already_linked",
            f"This Backline account is linked to another {_label(profile.provider)} "
            "account already.",
        )
    db_session.add(
        OAuthIdentity(
            user_id=user.id, provider=profile.provider, subject=profile.subject, email=profile.email
        )
    )
    await db_session.flush()


async def _identity(*, db_session: AsyncSession, profile: Profile) -> OAuthIdentity | None:
    return await db_session.scalar(
        select(OAuthIdentity).where(
            OAuthIdentity.provider == profile.provider, OAuthIdentity.subject == profile.subject
        )
    )


def _clip(value: str | None, length: int) -> str | None:
    if not value:
        return None
    return validation.optional_text(value[:length], field="profile", max_length=length)


def _label(provider: str) -> str:
    return {"google": "Google", "github": "GitHub"}.get(provider, provider)
