"""Relay conventions: opaque global IDs, the Node interface, cursor connections."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import strawberry

from backend.core.errors import BadUserInput

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
# Primary keys are 64-bit; a larger number in an id cannot name a row (and would overflow
# the database's integer before it could say so).
MAX_PK = 2**63 - 1
# A list is never longer than an Int (totalCount) can count.
MAX_POSITION = 2**31 - 1

T = TypeVar("T")


def to_global_id(type_name: str, pk: int) -> strawberry.ID:
    return strawberry.ID(base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode())


def parse_global_id(global_id: str, *, field: str = "id") -> tuple[str, int]:
    """(type name, primary key) of a global ID; BAD_USER_INPUT for anything else."""
    try:
        decoded = base64.urlsafe_b64decode(global_id.encode("ascii")).decode()
        type_name, pk = decoded.split(":", 1)
        number = int(pk)
    except (UnicodeError, binascii.Error, ValueError) as exc:
        raise BadUserInput(f"'{global_id[:50]}' is not a valid id.", field=field) from exc
    if not 0 < number <= MAX_PK or not type_name:
        raise BadUserInput(f"'{global_id[:50]}' is not a valid id.", field=field)
    return type_name, number


def from_global_id(global_id: str, *, expected: str, field: str = "id") -> int:
    """The primary key of a global ID that must name an object of type ``expected``."""
    type_name, pk = parse_global_id(global_id, field=field)
    if type_name != expected:
        raise BadUserInput(
            f"{field} must be the id of a {expected}, not a {type_name}.", field=field
        )
    return pk


@strawberry.interface(description="An object with a globally unique, opaque ID.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="A page of a list; `totalCount` counts the whole list.")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count_total: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]

    @strawberry.field
    async def total_count(self) -> int:
        return await self.count_total()


@dataclass(frozen=True)
class PageRequest:
    """Where a page starts (offset into the ordered list) and how long it is."""

    offset: int
    limit: int


def _cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"cursor:{position}".encode()).decode()


def page_request(first: int | None, after: str | None) -> PageRequest:
    """Check `first`/`after`; cursors are positions in the list's order."""
    if first is None:
        first = DEFAULT_PAGE_SIZE
    if first < 0 or first > MAX_PAGE_SIZE:
        raise BadUserInput(f"first must be between 0 and {MAX_PAGE_SIZE}.", field="first")
    offset = 0
    if after is not None:
        try:
            prefix, position = base64.urlsafe_b64decode(after.encode("ascii")).decode().split(":")
            if prefix != "cursor" or not 0 <= int(position) < MAX_POSITION:
                raise ValueError(after)
            offset = int(position) + 1
        except (UnicodeError, binascii.Error, ValueError) as exc:
            raise BadUserInput("after is not a cursor from this list.", field="after") from exc
    return PageRequest(offset=offset, limit=first)


def build_connection(
    rows: Sequence[object],
    page: PageRequest,
    to_node: Callable[[object], T],
    count_total: Callable[[], Awaitable[int]],
) -> Connection[T]:
    """A connection from up to ``limit + 1`` rows (the extra one tells there is more)."""
    visible = rows[: page.limit]
    edges = [
        Edge(cursor=_cursor(page.offset + index), node=to_node(row))
        for index, row in enumerate(visible)
    ]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > page.limit,
            has_previous_page=page.offset > 0,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count_total=count_total,
    )
