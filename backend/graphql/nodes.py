"""Nodes backed by one ORM row: their plain fields are the row's same-named columns,
and whether the viewer may see one is decided by the band that owns the row."""

from __future__ import annotations

from functools import cache
from typing import Any, Self

from strawberry.dataloader import DataLoader
from strawberry.types.private import is_private

from backend.graphql.context import Context, Info
from backend.graphql.relay import to_global_id


@cache
def _column_fields(cls: type) -> tuple[str, ...]:
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    return tuple(
        field.python_name
        for field in definition.fields
        if field.base_resolver is None
        and field.python_name != "id"
        # With postponed annotations, Private fields are still listed; skip them here.
        and not is_private(field.type_annotation.evaluate() if field.type_annotation else None)
    )


class RowNode:
    """Mix into a ``@strawberry.type`` that implements ``Node`` and declares
    ``row: strawberry.Private[Model]``; then define ``row_loader``."""

    @classmethod
    def from_row(cls, row: Any) -> Self:
        values = {name: getattr(row, name) for name in _column_fields(cls)}
        type_name = cls.__strawberry_definition__.name  # type: ignore[attr-defined]
        return cls(id=to_global_id(type_name, row.id), row=row, **values)  # type: ignore[call-arg]

    @classmethod
    def row_loader(cls, ctx: Context) -> DataLoader[int, Any]:
        raise NotImplementedError

    @classmethod
    def owning_band(cls, row: Any) -> int:
        return row.band_id

    @classmethod
    def is_listed(cls, row: Any) -> bool:
        """False for rows kept only for history (soft-deleted, removed)."""
        return True

    @classmethod
    async def resolve_node(cls, info: Info, pk: int) -> Self | None:
        """The node if it exists and the viewer is in its band, else None."""
        row = await cls.row_loader(info.context).load(pk)
        if row is None or not cls.is_listed(row):
            return None
        access = await info.context.access()
        return cls.from_row(row) if access.can_view(cls.owning_band(row)) else None
