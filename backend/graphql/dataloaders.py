"""Generic DataLoaders. Each turns the loads of one tick into one SQL statement, so a
request's statement count depends on the shape of its query, not on how many rows come back.

Domains build their loaders from these (see ``backend/<domain>/graphql*/loaders``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, aliased
from strawberry.dataloader import DataLoader

from backend.graphql.database import RequestDatabase
from backend.graphql.relay import PageRequest

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def rows_by_key(
    db: RequestDatabase, model: type, key: InstrumentedAttribute[Any] | None = None
) -> DataLoader[Any, Any]:
    """One row per key (by primary key unless another unique column is given), or None."""
    column = key if key is not None else model.id  # type: ignore[attr-defined]

    async def load(keys: Sequence[Any]) -> list[Any]:
        rows = await db.scalars(select(model).where(column.in_(keys)))
        found = {getattr(row, column.key): row for row in rows}
        return [found.get(k) for k in keys]

    return DataLoader(load_fn=load)


def groups_by_key(
    db: RequestDatabase,
    statement: Callable[[Sequence[Any]], Select[Any]],
    key_of: Callable[[Any], Any],
    *,
    scalars: bool = True,
) -> DataLoader[Any, list[Any]]:
    """A list of rows per key; ``statement(keys)`` selects them all at once."""

    async def load(keys: Sequence[Any]) -> list[list[Any]]:
        fetch = db.scalars if scalars else db.all
        groups: dict[Any, list[Any]] = defaultdict(list)
        for row in await fetch(statement(keys)):
            groups[key_of(row)].append(row)
        return [groups.get(k, []) for k in keys]

    return DataLoader(load_fn=load)


def values_by_key(
    db: RequestDatabase,
    statement: Callable[[Sequence[Any]], Select[Any]],
    default: Any,
) -> DataLoader[Any, Any]:
    """One value per key from (key, value) rows, e.g. counts; ``default`` for absent keys."""

    async def load(keys: Sequence[Any]) -> list[Any]:
        found = {key: value for key, value in await db.all(statement(keys))}
        return [found.get(k, default) for k in keys]

    return DataLoader(load_fn=load)


def page_by_parent(
    db: RequestDatabase,
    *,
    base: Select[Any],
    entity: type,
    parent: ColumnElement[Any],
    order_by: Sequence[ColumnElement[Any]],
    page: PageRequest,
) -> DataLoader[Any, list[Any]]:
    """The same page (offset, limit + 1 rows) of many parents' lists in one statement,
    numbering each parent's rows with ROW_NUMBER() (SQLite ≥ 3.25 and PostgreSQL)."""

    async def load(keys: Sequence[Any]) -> list[list[Any]]:
        if len(keys) == 1:
            # One parent (a band's track list, say): LIMIT/OFFSET returns the same rows and
            # lets the database walk an index instead of numbering every row of the parent.
            statement = (
                base.where(parent == keys[0])
                .order_by(*order_by)
                .offset(page.offset)
                .limit(page.limit + 1)
            )
            return [list(await db.scalars(statement))]
        position = func.row_number().over(partition_by=parent, order_by=order_by)
        inner = (
            base.add_columns(parent.label("parent_key"), position.label("position"))
            .where(parent.in_(keys))
            .subquery()
        )
        row = aliased(entity, inner)
        statement = (
            select(row, inner.c.parent_key)
            .where(
                inner.c.position > page.offset,
                inner.c.position <= page.offset + page.limit + 1,
            )
            .order_by(inner.c.parent_key, inner.c.position)
        )
        pages: dict[Any, list[Any]] = defaultdict(list)
        for item, parent_key in await db.all(statement):
            pages[parent_key].append(item)
        return [pages.get(k, []) for k in keys]

    return DataLoader(load_fn=load)


def count_by_parent(
    db: RequestDatabase, *, base: Select[Any], parent: ColumnElement[Any]
) -> DataLoader[Any, int]:
    """How many rows ``base`` has per parent (a connection's totalCount)."""

    def statement(keys: Sequence[Any]) -> Select[Any]:
        return (
            base.with_only_columns(parent, func.count(), maintain_column_froms=True)
            .where(parent.in_(keys))
            .group_by(parent)
        )

    return values_by_key(db, statement, 0)


class LoaderCache:
    """Loaders that depend on arguments (page size, filters) are made on first use and
    shared by every field of the request that asks with the same arguments."""

    def __init__(self) -> None:
        self._loaders: dict[Hashable, DataLoader[Any, Any]] = {}

    def get(self, key: Hashable, make: Callable[[], DataLoader[K, V]]) -> DataLoader[K, V]:
        loader = self._loaders.get(key)
        if loader is None:
            loader = self._loaders[key] = make()
        return loader
