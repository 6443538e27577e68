"""Local accounts: registration, password login, profile look-ups."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import User
from backend.accounts.passwords import hash_password, needs_rehash, verify_password
from backend.core import validation
from backend.core.errors import AlreadyExists, BadUserInput, Unauthenticated

_HANDLE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # argon2 copes, but a megabyte password is an attack


def _check_handle(handle: str) -> str:
    cleaned = handle.strip().lower()
    if not _HANDLE.match(cleaned):
        raise BadUserInput(
            "A handle is 1 to 40 lower-case letters, digits, '_' and '-', "
            "starting and ending with a letter or digit.",
            field="handle",
        )
    return cleaned


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadUserInput(
            f"The password must have at least {MIN_PASSWORD_LENGTH} characters.", field="password"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadUserInput(
            f"The password must have at most {MAX_PASSWORD_LENGTH} characters.", field="password"
        )
    return password


async def register(
    *,
    db_session: AsyncSession,
    email: str,
    password: str,
    handle: str,
    display_name: str | None = None,
) -> User:
    """Create a local account; email and handle must be free."""
    user = User(
        email=validation.email(email),
        handle=_check_handle(handle),
        display_name=validation.optional_text(display_name, field="displayName", max_length=100),
        password_hash=hash_password(_check_password(password)),
        email_verified=False,
    )
    if await get_by_email(db_session=db_session, email=user.email):
        raise AlreadyExists("An account with this email exists already.", field="email")
    taken = await db_session.scalar(select(User.id).where(User.handle == user.handle))
    if taken:
        raise AlreadyExists("This handle is taken.", field="handle")
    db_session.add(user)
    await db_session.flush()
    return user


async def authenticate(*, db_session: AsyncSession, email: str, password: str) -> User:
    """The user with this email and password, or UNAUTHENTICATED (never which one was wrong)."""
    user = await get_by_email(db_session=db_session, email=email.strip().lower())
    valid = verify_password(user.password_hash if user else None, password[:MAX_PASSWORD_LENGTH])
    if user is None or not valid:
        raise Unauthenticated("Wrong email or password.")
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


async def get_by_email(*, db_session: AsyncSession, email: str) -> User | None:
    """The user with this (lower-cased) email, if any."""
    if not validation.is_email(email):
        return None  # nobody has it, and the database need not be asked
    return await db_session.scalar(select(User).where(func.lower(User.email) == email))


async def get(*, db_session: AsyncSession, user_id: int) -> User | None:
    """One user by id."""
    return await db_session.get(User, user_id)
