"""Sources: the folders and WebDAV shares a band's recordings are indexed from."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.bands.access import BandAccess
from backend.core import crypto, validation
from backend.core.database import utcnow
from backend.core.errors import BadUserInput, NotFound
from backend.core.settings import Settings
from backend.jobs.models import Job, JobStatus
from backend.library.models import Source, SourceKind, TrackVersion, VersionStatus
from backend.library.webdav import WebDavClient


@dataclass(frozen=True)
class NewSource:
    band_id: int
    kind: SourceKind
    name: str
    root: str
    username: str | None = None
    password: str | None = None
    watch: bool = False


# What sources.root holds; a longer value would not fit the column (PostgreSQL refuses it).
ROOT_MAX_LENGTH = Source.__table__.c.root.type.length


def _too_long(what: str) -> BadUserInput:
    return BadUserInput(f"{what} is too long (at most {ROOT_MAX_LENGTH} characters).", field="root")


def resolve_local_root(root: str, *, settings: Settings) -> Path:
    """The real folder a LOCAL_FOLDER source names; it must lie inside an allowed root
    once every symlink is followed."""
    if not root.strip() or "\x00" in root:
        raise BadUserInput("Give the folder's path.", field="root")
    if len(root) > ROOT_MAX_LENGTH:
        raise _too_long("The folder's path")
    path = Path(root.strip()).expanduser()
    if not path.is_absolute():
        raise BadUserInput("Give the folder as an absolute path.", field="root")
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop, an unreadable link
        raise BadUserInput("There is no folder at that path.", field="root") from error
    allowed = settings.resolved_allowed_roots
    if not any(real == base or real.is_relative_to(base) for base in allowed):
        shown = ", ".join(str(base) for base in allowed)
        raise BadUserInput(
            f"Backline may only index folders inside {shown} (BACKLINE_ALLOWED_ROOTS).",
            field="root",
        )
    try:
        is_folder = real.is_dir()
    except OSError as error:  # a name longer than the file system allows (ENAMETOOLONG), ...
        raise BadUserInput("There is no folder at that path.", field="root") from error
    if not is_folder:
        raise BadUserInput("There is no folder at that path.", field="root")
    if len(str(real)) > ROOT_MAX_LENGTH:  # the link was short, the folder's path is not
        raise _too_long("The folder's path")
    return real


def _check_webdav_url(root: str) -> str:
    url = root.strip()
    not_a_url = BadUserInput(
        "Give the share's URL, e.g. https://cloud.example.org/remote.php/dav/files/kim/",
        field="root",
    )
    # Control characters (NUL among them, which PostgreSQL cannot store) are in no URL.
    if any(unicodedata.category(ch) == "Cc" for ch in url):
        raise not_a_url
    if len(url) + 1 > ROOT_MAX_LENGTH:  # + the "/" it may get
        raise _too_long("The share's URL")
    try:
        parts = urlsplit(url)
        port = parts.port  # a ValueError when it is not a number from 0 to 65535
    except ValueError as error:  # e.g. "http://[::1": an IPv6 host without its "]"
        raise not_a_url from error
    if parts.scheme not in {"http", "https"} or not parts.hostname or port == 0:
        raise not_a_url
    if parts.username or parts.password:
        raise BadUserInput("Put the username and password in their own fields.", field="root")
    return url if url.endswith("/") else url + "/"


async def add(
    *, db_session: AsyncSession, access: BandAccess, settings: Settings, new: NewSource
) -> Source:
    """Register a folder or share for a band (admins)."""
    access.require_admin(new.band_id, what="band", action="add sources")
    return await _insert(db_session=db_session, settings=settings, new=new)


async def find_or_add_local(
    *,
    db_session: AsyncSession,
    settings: Settings,
    band_id: int,
    root: str,
    name: str | None = None,
    watch: bool | None = None,
) -> tuple[Source, bool]:
    """The band's live LOCAL_FOLDER source for this folder, else a new one named ``name``
    (default: the folder's name); True when it is new. A system action (`backline scan`
    on the server itself), so no band role is asked for; the folder rules are `add`'s."""
    real = resolve_local_root(root, settings=settings)
    source = await db_session.scalar(
        select(Source)
        .where(
            Source.band_id == band_id,
            Source.kind == SourceKind.LOCAL_FOLDER,
            Source.root == str(real),
            Source.removed_at.is_(None),
        )
        .order_by(Source.id)
        .limit(1)
    )
    if source is not None:
        if watch is not None and source.watch != watch:
            source.watch = watch
            await db_session.flush()
        return source, False
    new = NewSource(
        band_id=band_id,
        kind=SourceKind.LOCAL_FOLDER,
        name=name if name is not None else real.name or str(real),
        root=str(real),
        watch=bool(watch),
    )
    return await _insert(db_session=db_session, settings=settings, new=new), True


async def _insert(*, db_session: AsyncSession, settings: Settings, new: NewSource) -> Source:
    name = validation.text(new.name, field="name", max_length=100)
    if new.kind == SourceKind.LOCAL_FOLDER:
        root = str(resolve_local_root(new.root, settings=settings))
        if new.username or new.password:
            raise BadUserInput("A local folder takes no username or password.", field="username")
        username = password = None
    else:
        root = _check_webdav_url(new.root)
        username = validation.optional_text(new.username, field="username", max_length=200)
        password = crypto.encrypt(new.password, settings=settings) if new.password else None
    source = Source(
        band_id=new.band_id,
        kind=new.kind,
        name=name,
        root=root,
        username=username,
        password_encrypted=password,
        watch=new.watch,
    )
    db_session.add(source)
    await db_session.flush()
    return source


async def update_source(
    *,
    db_session: AsyncSession,
    access: BandAccess,
    source_id: int,
    settings: Settings,
    name: str | None = None,
    watch: bool | None = None,
    username: str | None = None,
    password: str | None = None,
) -> Source:
    """Rename a source, turn watching on or off, or give a share new credentials (admins)."""
    source = await _live_source(db_session=db_session, access=access, source_id=source_id)
    access.require_admin(source.band_id, what="source", action="change sources")
    if name is not None:
        source.name = validation.text(name, field="name", max_length=100)
    if watch is not None:
        source.watch = watch
    if username is not None or password is not None:
        if source.kind != SourceKind.WEBDAV:
            field = "username" if username is not None else "password"
            raise BadUserInput("A local folder takes no username or password.", field=field)
        if username is not None:
            source.username = validation.optional_text(username, field="username", max_length=200)
        if password is not None:
            source.password_encrypted = (
                crypto.encrypt(password, settings=settings) if password else None
            )
    await db_session.flush()
    return source


async def remove(*, db_session: AsyncSession, access: BandAccess, source_id: int) -> None:
    """Stop indexing a source (admins). Its takes stay, marked MISSING, with every
    comment and reaction; adding the folder again brings them back."""
    source = await _live_source(db_session=db_session, access=access, source_id=source_id)
    access.require_admin(source.band_id, what="source", action="remove sources")
    source.removed_at = utcnow()
    # A scan under way stops at its next batch (and one still queued never starts).
    await db_session.execute(
        update(Job)
        .where(
            Job.source_id == source.id,
            Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),
            Job.cancel_requested_at.is_(None),
        )
        .values(cancel_requested_at=source.removed_at)
    )
    await db_session.execute(
        update(TrackVersion)
        .where(TrackVersion.source_id == source.id)
        .values(status=VersionStatus.MISSING)
    )
    await db_session.flush()


def password_of(source: Source, *, settings: Settings) -> str | None:
    if source.password_encrypted is None:
        return None
    return crypto.decrypt(source.password_encrypted, settings=settings)


def webdav_client(source: Source, *, settings: Settings) -> WebDavClient:
    """A client for the share, signed in as the source says; raises UndecryptableSecret
    when its stored password cannot be read with the current key."""
    password = password_of(source, settings=settings)
    return WebDavClient(source.root, username=source.username, password=password)


async def _live_source(*, db_session: AsyncSession, access: BandAccess, source_id: int) -> Source:
    source = await access.fetch(
        db_session=db_session, model=Source, object_id=source_id, what="source"
    )
    if source.removed_at is not None:
        raise NotFound("source")
    return source
