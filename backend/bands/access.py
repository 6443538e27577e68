"""Who may see and change what: the one place the band permission rules live.

Every band-owned row carries ``band_id``. A member sees everything in their bands; a
stranger is told such objects do not exist (NOT_FOUND, never FORBIDDEN, which would
confirm they do). Admin-only actions answer FORBIDDEN to members, who can see the object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.bands.models import BandMember, BandRole
from backend.core.errors import Forbidden, NotFound, Unauthenticated

Row = TypeVar("Row", bound=Any)


@dataclass(frozen=True)
class BandAccess:
    user_id: int | None
    roles: dict[int, BandRole] = field(default_factory=dict)

    @classmethod
    async def load(cls, *, db_session: AsyncSession, user_id: int | None) -> BandAccess:
        if user_id is None:
            return cls(user_id=None)
        rows = await db_session.execute(
            select(BandMember.band_id, BandMember.role).where(BandMember.user_id == user_id)
        )
        return cls(user_id=user_id, roles={band_id: role for band_id, role in rows})

    @property
    def band_ids(self) -> list[int]:
        return list(self.roles)

    def role(self, band_id: int) -> BandRole | None:
        return self.roles.get(band_id)

    def can_view(self, band_id: int) -> bool:
        return band_id in self.roles

    def require_user(self) -> int:
        if self.user_id is None:
            raise Unauthenticated()
        return self.user_id

    def require_member(self, band_id: int, *, what: str = "object") -> BandRole:
        self.require_user()
        role = self.roles.get(band_id)
        if role is None:
            raise NotFound(what)
        return role

    def require_admin(self, band_id: int, *, what: str = "object", action: str) -> None:
        if self.require_member(band_id, what=what) != BandRole.ADMIN:
            raise Forbidden(f"Only a band admin can {action}.")

    def require_author_or_admin(
        self, band_id: int, *, author_id: int, what: str, action: str
    ) -> None:
        role = self.require_member(band_id, what=what)
        if author_id != self.user_id and role != BandRole.ADMIN:
            raise Forbidden(f"Only the author or a band admin can {action}.")

    async def fetch(
        self, *, db_session: AsyncSession, model: type[Row], object_id: int, what: str
    ) -> Row:
        """A band-owned row the user may see; NOT_FOUND when it is missing or not theirs."""
        self.require_user()
        row = await db_session.get(model, object_id)
        if row is None or not self.can_view(row.band_id):
            raise NotFound(what)
        return row
