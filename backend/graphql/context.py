"""What every resolver gets: settings, the request's database, who is asking, loaders."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.fastapi import BaseContext
from strawberry.types import Info as StrawberryInfo

from backend.accounts import tokens
from backend.bands.access import BandAccess
from backend.core.errors import Unauthenticated
from backend.core.settings import Settings
from backend.graphql.database import RequestDatabase
from backend.graphql.dataloaders import LoaderCache


class Context(BaseContext):
    def __init__(
        self,
        *,
        settings: Settings,
        db: RequestDatabase,
        authorization: str | None,
        request_id: str | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.db = db
        self.request_id = request_id or uuid.uuid4().hex[:16]
        self.loaders = LoaderCache()
        self._access: BandAccess | None = None
        self._viewer_id, self._auth_error = self._read_authorization(authorization)

    def _read_authorization(self, header: str | None) -> tuple[int | None, Unauthenticated | None]:
        if not header:
            return None, None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, Unauthenticated(
                "Send the access token as 'Authorization: Bearer <token>'."
            )
        try:
            return tokens.decode_access_token(token.strip(), settings=self.settings), None
        except Unauthenticated as error:
            return None, error

    @property
    def viewer_id(self) -> int | None:
        """The signed-in user, None when signed out; a bad token is an error, not 'signed out'."""
        if self._auth_error is not None:
            raise self._auth_error
        return self._viewer_id

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

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A mutation's unit of work; afterwards nothing read before it is trusted."""
        async with self.db.transaction() as session:
            yield session
        self._access = None
        self.loaders = LoaderCache()


Info = StrawberryInfo[Context, None]
