"""GraphQL for bands, their members and invites."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

import strawberry
from sqlalchemy import select
from strawberry.dataloader import DataLoader

from backend.bands import service
from backend.bands.models import Band, BandMember, BandRole
from backend.core.errors import BadUserInput, NotFound
from backend.graphql.context import Context, Info
from backend.graphql.dataloaders import count_by_parent, page_by_parent, rows_by_key
from backend.graphql.nodes import RowNode
from backend.graphql.relay import (
    Connection,
    Node,
    build_connection,
    from_global_id,
    page_request,
)
from backend.jobs.models import JobStatus
from backend.library import repository as library_repository

strawberry.enum(BandRole)


def _band(ctx: Context) -> DataLoader[int, Band | None]:
    return ctx.loaders.get("band", lambda: rows_by_key(ctx.db, Band))


async def band_of(info: Info, band_id: int) -> BandNode:
    """The band of an object the viewer can already see."""
    row = await _band(info.context).load(band_id)
    assert row is not None
    return BandNode.from_row(row)


@strawberry.type(name="BandMember")
class BandMemberType:
    role: BandRole
    joined_at: datetime
    row: strawberry.Private[BandMember]

    @strawberry.field
    async def user(self, info: Info) -> accounts_graphql.UserNode:
        return await accounts_graphql.user_of(info, self.row.user_id)


@strawberry.type(name="Band")
class BandNode(RowNode, Node):
    id: strawberry.ID
    slug: str
    name: str
    created_at: datetime
    row: strawberry.Private[Band]

    @classmethod
    def row_loader(cls, ctx: Context) -> DataLoader[int, Band | None]:
        return _band(ctx)

    @classmethod
    def owning_band(cls, row: Band) -> int:
        return row.id

    @strawberry.field
    async def viewer_role(self, info: Info) -> BandRole | None:
        return (await info.context.access()).role(self.row.id)

    @strawberry.field(description="Longest-standing first.")
    async def members(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[BandMemberType]:
        ctx = info.context
        page = page_request(first, after)
        base = select(BandMember)
        rows = ctx.loaders.get(
            ("members_of_band", page),
            lambda: page_by_parent(
                ctx.db,
                base=base,
                entity=BandMember,
                parent=BandMember.band_id,
                order_by=[BandMember.joined_at, BandMember.id],
                page=page,
            ),
        )
        count = ctx.loaders.get(
            "members_of_band_count",
            lambda: count_by_parent(ctx.db, base=base, parent=BandMember.band_id),
        )
        return build_connection(
            await rows.load(self.row.id),
            page,
            lambda member: BandMemberType(role=member.role, joined_at=member.joined_at, row=member),
            lambda: count.load(self.row.id),
        )

    @strawberry.field
    async def sources(self, info: Info) -> list[library_types.SourceNode]:
        rows = await library_loaders.sources_by_band(info.context).load(self.row.id)
        return [library_types.SourceNode.from_row(row) for row in rows]

    @strawberry.field(description="Newest first; `from` and `to` are inclusive.")
    async def sessions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        from_: Annotated[date | None, strawberry.argument(name="from")] = None,
        to: date | None = None,
    ) -> Connection[library_types.RehearsalSessionNode]:
        page = page_request(first, after)
        rows, count = library_loaders.sessions_of_band(info.context, page, from_, to)
        return build_connection(
            await rows.load(self.row.id),
            page,
            library_types.RehearsalSessionNode.from_row,
            lambda: count.load(self.row.id),
        )

    @strawberry.field
    async def tracks(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: library_types.TrackFilterInput | None = None,
        order_by: library_types.TrackOrder = library_repository.TrackOrder.TITLE,
    ) -> Connection[library_types.TrackNode]:
        page = page_request(first, after)
        track_filter = library_types.to_track_filter(filter)
        rows, count = library_loaders.tracks_of_band(info.context, page, track_filter, order_by)
        return build_connection(
            await rows.load(self.row.id),
            page,
            library_types.TrackNode.from_row,
            lambda: count.load(self.row.id),
        )

    @strawberry.field(description="Newest first.")
    async def jobs(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: list[JobStatus] | None = None,
    ) -> Connection[jobs_graphql.JobNode]:
        return await jobs_graphql.jobs_of_band(info, self.row.id, first, after, status)


@strawberry.input
class CreateBandInput:
    name: str
    slug: str | None = strawberry.field(default=None, description="Made from the name if left out.")


@strawberry.type
class BandQueries:
    @strawberry.field(description="One of the viewer's bands, by id or slug.")
    async def band(
        self, info: Info, id: strawberry.ID | None = None, slug: str | None = None
    ) -> BandNode:
        info.context.require_viewer()
        if id is not None:
            node = await BandNode.resolve_node(info, from_global_id(id, expected="Band"))
        elif slug is not None:
            async with info.context.db.reading() as db_session:
                row = await service.get_by_slug(db_session=db_session, slug=slug)
            visible = row is not None and (await info.context.access()).can_view(row.id)
            node = BandNode.from_row(row) if visible and row else None
        else:
            raise BadUserInput("Give the band's id or slug.", field="id")
        if node is None:
            raise NotFound("band")
        return node


@strawberry.type
class BandMutations:
    @strawberry.mutation(description="A new band, with the viewer as its admin.")
    async def create_band(self, info: Info, input: CreateBandInput) -> BandNode:
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            band = await service.create(
                db_session=db_session, access=access, name=input.name, slug=input.slug
            )
        return BandNode.from_row(band)

    @strawberry.mutation
    async def update_band(self, info: Info, id: strawberry.ID, name: str | None = None) -> BandNode:
        band_id = from_global_id(id, expected="Band")
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            band = await service.update(
                db_session=db_session, access=access, band_id=band_id, name=name
            )
        return BandNode.from_row(band)

    @strawberry.mutation(description="An invite token, valid for 72 hours, for anyone to join.")
    async def create_invite(
        self, info: Info, band_id: strawberry.ID, role: BandRole = BandRole.MEMBER
    ) -> str:
        pk = from_global_id(band_id, expected="Band", field="bandId")
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            return await service.create_invite(
                db_session=db_session,
                access=access,
                band_id=pk,
                role=role,
                valid_for=timedelta(hours=info.context.settings.invite_hours),
            )

    @strawberry.mutation
    async def accept_invite(self, info: Info, token: str) -> BandNode:
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            band = await service.accept_invite(db_session=db_session, access=access, token=token)
        return BandNode.from_row(band)

    @strawberry.mutation(description="Make a member admin or not (admins only).")
    async def set_member_role(
        self, info: Info, band_id: strawberry.ID, user_id: strawberry.ID, role: BandRole
    ) -> BandNode:
        band_pk = from_global_id(band_id, expected="Band", field="bandId")
        user_pk = from_global_id(user_id, expected="User", field="userId")
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            await service.set_member_role(
                db_session=db_session, access=access, band_id=band_pk, user_id=user_pk, role=role
            )
        return await band_of(info, band_pk)

    @strawberry.mutation(description="Leave a band, or (admins) remove a member.")
    async def remove_member(
        self, info: Info, band_id: strawberry.ID, user_id: strawberry.ID
    ) -> bool:
        band_pk = from_global_id(band_id, expected="Band", field="bandId")
        user_pk = from_global_id(user_id, expected="User", field="userId")
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            await service.remove_member(
                db_session=db_session, access=access, band_id=band_pk, user_id=user_pk
            )
        return True


# Imported last: these modules refer back to the types above.
from backend.accounts import graphql as accounts_graphql  # noqa: E402
from backend.jobs import graphql as jobs_graphql  # noqa: E402
from backend.library.graphql import loaders as library_loaders  # noqa: E402
from backend.library.graphql import types as library_types  # noqa: E402
