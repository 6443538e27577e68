"""What every resolver gets: settings, the request's database, who is asking, loaders."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.fastapi import BaseContext
from strawberry.types import Info as StrawberryInfo

from backend.accounts import api_tokens, authentication
from backend.accounts.authentication import Caller
from backend.bands.access import BandAccess
from backend.core.errors import Forbidden, Unauthenticated
from backend.core.events import EventBus
from backend.core.settings import Settings
from backend.graphql.database import RequestDatabase
from backend.graphql.dataloaders import LoaderCache
from backend.jobs.queue import JobQueue
from backend.media.storage import Storage

logger = logging.getLogger("backline.graphql")


class Context(BaseContext):
    def __init__(
        self,
        *,
        settings: Settings,
        db: RequestDatabase,
        session_factory: async_sessionmaker[AsyncSession],
        queue: JobQueue,
        bus: EventBus,
        authorization: str | None,
        request_id: str | None = None,
        storage: Storage | None = None,
        media_base_url: str = "",
        client_ip: str | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        # Uploads and derived files; signed media links start with media_base_url
        # (BACKLINE_PUBLIC_URL, else the origin the client reached; "" makes them relative).
        self.storage = storage
        self.media_base_url = media_base_url
        self.db = db
        self.session_factory = session_factory
        self.queue = queue
        self.bus = bus
        self.request_id = request_id or uuid.uuid4().hex[:16]
        self.loaders = LoaderCache()
        self._access: BandAccess | None = None
        self._authorization = authorization
        self._caller: tuple[Caller | None, Unauthenticated | None] | None = None
        # The client's address (rate limits of anonymous callers); None when unknown.
        self.client_ip = client_ip

    def _header(self) -> str | None:
        # Over a websocket the token comes in connection_init's payload, under the same
        # name as the HTTP header, so one client setting serves both.
        if self._authorization:
            return self._authorization
        params = getattr(self, "connection_params", None)
        value = params.get("authorization") if isinstance(params, dict) else None
        return value if isinstance(value, str) else None

    async def authenticate(self) -> None:
        """Read the caller from the token (an API token takes a database look-up); a bad
        token is kept as the error every viewer-dependent field then raises. Called when
        the request arrives, and again once a websocket's connection_init is in."""
        try:
            caller = await authentication.authenticate(
                self._header(), settings=self.settings, session_factory=self.session_factory
            )
            self._caller = (caller, None)
        except Unauthenticated as error:
            self._caller = (None, error)

    @property
    def caller(self) -> Caller | None:
        """Who is asking (a login or an API token), None when signed out; a bad token is
        an error, not 'signed out'."""
        if self._caller is None:
            # Not authenticated yet (a context built outside get_context): an access token
            # needs no database; an API token does, and must go through authenticate().
            try:
                token = authentication.bearer_token(self._header())
                if token is not None and api_tokens.looks_like_api_token(token):
                    raise Unauthenticated("The API token was not checked; send it again.")
                self._caller = (
                    None
                    if token is None
                    else authentication.from_access_token(token, settings=self.settings),
                    None,
                )
            except Unauthenticated as error:
                self._caller = (None, error)
        caller, error = self._caller
        if error is not None:
            raise error
        return caller

    @property
    def viewer_id(self) -> int | None:
        """The signed-in user, None when signed out; a bad token is an error, not 'signed out'."""
        caller = self.caller
        return caller.user_id if caller else None

    def require_session_login(self) -> int:
        """The viewer, signed in as a person: managing tokens and sign-in methods is not
        for an integration's API token (a leaked token must not mint more)."""
        viewer_id = self.require_viewer()
        if self.caller and self.caller.is_api_token:
            raise Forbidden("API tokens cannot do this; sign in as yourself.")
        return viewer_id

    def require_viewer(self) -> int:
        viewer_id = self.viewer_id
        if viewer_id is None:
            raise Unauthenticated()
        return viewer_id

    async def access(self) -> BandAccess:
        """The viewer's band memberships, read once per request (and after each mutation)."""
        if self._access is None:
            viewer_id = self.viewer_id
            async with self.db.reading() as session:
                self._access = await BandAccess.load(db_session=session, user_id=viewer_id)
        return self._access

    async def fresh_access(self) -> BandAccess:
        """Memberships read now, on a short session: a subscription lives for hours, holds
        no database connection, and must notice a member who left."""
        async with self.session_factory() as session:
            return await BandAccess.load(db_session=session, user_id=self.viewer_id)

    async def announce(self, band_id: int, event: dict[str, Any]) -> None:
        """Tell the band's live subscribers; a bus outage must not undo a committed change."""
        try:
            await self.bus.publish(f"band:{band_id}", event)
        except Exception:  # logged; the change itself is saved
            logger.warning("band %s: event %s not published", band_id, event.get("type"))

    async def between_events(self) -> None:
        """A subscription between two events: give the database connection back and
        forget what was read (the next event must see the database as it is then)."""
        async with self.db.reading() as session:
            if session.in_transaction():  # most events read nothing through it
                await session.rollback()
        self.loaders = LoaderCache()
        self._access = None  # memberships change while a subscription lives

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A mutation's unit of work; afterwards nothing read before it is trusted."""
        async with self.db.transaction() as session:
            yield session
        self._access = None
        self.loaders = LoaderCache()


class ViewerDependent(Exception):
    """Raised where a resolver asks who the viewer is while executing for many viewers."""


class SharedContext(Context):
    """A context for executing a subscription's selection once for all its subscribers.

    It has no viewer: asking who the viewer is (``viewer_id``, ``access``), which every
    viewer-dependent field does, marks the result as not shareable and raises. The
    caller then executes the selection per subscriber instead. Everything else (the
    database, loaders, settings) works as in any request."""

    viewer_read = False

    @property
    def caller(self) -> Caller | None:
        self.viewer_read = True
        raise ViewerDependent()

    @property
    def viewer_id(self) -> int | None:
        self.viewer_read = True
        raise ViewerDependent()

    async def access(self) -> BandAccess:
        self.viewer_read = True
        raise ViewerDependent()

    async def fresh_access(self) -> BandAccess:
        self.viewer_read = True
        raise ViewerDependent()


Info = StrawberryInfo[Context, None]
