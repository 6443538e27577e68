"""GraphQL for comments and reactions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import aliased
from strawberry.dataloader import DataLoader

from backend.core.errors import BadUserInput
from backend.feedback import service
from backend.feedback.models import Comment, Reaction, ReactionKind, ReactionTarget
from backend.graphql.context import Context, Info
from backend.graphql.dataloaders import count_by_parent, page_by_parent, rows_by_key
from backend.graphql.nodes import RowNode
from backend.graphql.relay import (
    Connection,
    Node,
    build_connection,
    from_global_id,
    page_request,
    parse_global_id,
)

strawberry.enum(ReactionKind)

_Reply = aliased(Comment)
# A deleted comment stays listed (as a tombstone) while it has live replies.
_LISTED = or_(
    Comment.deleted_at.is_(None),
    exists().where(_Reply.parent_id == Comment.id, _Reply.deleted_at.is_(None)),
)
_TIMELINE_ORDER = [Comment.at_ms.asc().nulls_last(), Comment.created_at, Comment.id]
_THREAD_ORDER = [Comment.created_at, Comment.id]


def _comment(ctx: Context) -> DataLoader[int, Comment | None]:
    return ctx.loaders.get("comment", lambda: rows_by_key(ctx.db, Comment))


@strawberry.type
class ReactionCount:
    kind: ReactionKind
    count: int
    viewer_reacted: bool


@strawberry.type
class ReactionSummary:
    total: int
    counts: list[ReactionCount] = strawberry.field(description="Kinds with at least one.")


def _reaction_summaries(ctx: Context) -> DataLoader[tuple[ReactionTarget, int], ReactionSummary]:
    viewer_id = ctx.viewer_id or 0

    async def load(keys: Sequence[tuple[ReactionTarget, int]]) -> list[ReactionSummary]:
        ids_by_type: dict[ReactionTarget, list[int]] = defaultdict(list)
        for target_type, target_id in keys:
            ids_by_type[target_type].append(target_id)
        statement = (
            select(
                Reaction.target_type,
                Reaction.target_id,
                Reaction.kind,
                func.count(),
                func.max(case((Reaction.user_id == viewer_id, 1), else_=0)),
            )
            .where(
                or_(
                    *(
                        and_(Reaction.target_type == target_type, Reaction.target_id.in_(ids))
                        for target_type, ids in ids_by_type.items()
                    )
                )
            )
            .group_by(Reaction.target_type, Reaction.target_id, Reaction.kind)
        )
        counts: dict[tuple[Any, int], dict[ReactionKind, ReactionCount]] = defaultdict(dict)
        for target_type, target_id, kind, count, mine in await ctx.db.all(statement):
            counts[(target_type, target_id)][kind] = ReactionCount(
                kind=kind, count=count, viewer_reacted=bool(mine)
            )
        summaries = []
        for key in keys:
            by_kind = counts.get(key, {})
            ordered = [by_kind[kind] for kind in ReactionKind if kind in by_kind]
            summaries.append(ReactionSummary(total=sum(c.count for c in ordered), counts=ordered))
        return summaries

    return ctx.loaders.get("reaction_summaries", lambda: DataLoader(load_fn=load))


async def reaction_summary(
    info: Info, target_type: ReactionTarget, target_id: int
) -> ReactionSummary:
    return await _reaction_summaries(info.context).load((target_type, target_id))


@strawberry.type(name="Comment")
class CommentNode(RowNode, Node):
    id: strawberry.ID
    body: str = strawberry.field(description="Empty once the comment is deleted.")
    at_ms: int | None
    end_ms: int | None
    resolved: bool
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    row: strawberry.Private[Comment]

    @classmethod
    def from_row(cls, row: Comment) -> CommentNode:
        node = super().from_row(row)
        if row.deleted_at is not None:
            node.body = ""  # a tombstone keeps its place in the thread, not its words
        return node

    @classmethod
    def row_loader(cls, ctx: Context) -> DataLoader[int, Comment | None]:
        return _comment(ctx)

    @classmethod
    def is_listed(cls, row: Comment) -> bool:
        return row.deleted_at is None

    @strawberry.field
    async def author(self, info: Info) -> accounts_graphql.UserNode:
        return await accounts_graphql.user_of(info, self.row.author_id)

    @strawberry.field
    async def version(self, info: Info) -> library_types.TrackVersionNode:
        row = await library_loaders.version(info.context).load(self.row.version_id)
        assert row is not None
        return library_types.TrackVersionNode.from_row(row)

    @strawberry.field
    async def parent(self, info: Info) -> CommentNode | None:
        if self.row.parent_id is None:
            return None
        row = await _comment(info.context).load(self.row.parent_id)
        return CommentNode.from_row(row) if row else None

    @strawberry.field(description="Oldest first.")
    async def replies(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[CommentNode]:
        ctx = info.context
        page = page_request(first, after)
        base = select(Comment).where(Comment.deleted_at.is_(None))
        rows = ctx.loaders.get(
            ("replies", page),
            lambda: page_by_parent(
                ctx.db,
                base=base,
                entity=Comment,
                parent=Comment.parent_id,
                order_by=_THREAD_ORDER,
                page=page,
            ),
        )
        count = ctx.loaders.get(
            "replies_count", lambda: count_by_parent(ctx.db, base=base, parent=Comment.parent_id)
        )
        return build_connection(
            await rows.load(self.row.id),
            page,
            CommentNode.from_row,
            lambda: count.load(self.row.id),
        )

    @strawberry.field
    async def reactions(self, info: Info) -> ReactionSummary:
        return await reaction_summary(info, ReactionTarget.COMMENT, self.row.id)


async def comments_of_version(
    info: Info, version_id: int, first: int | None, after: str | None
) -> Connection[CommentNode]:
    ctx = info.context
    page = page_request(first, after)
    base = select(Comment).where(Comment.parent_id.is_(None), _LISTED)
    rows = ctx.loaders.get(
        ("comments_of_version", page),
        lambda: page_by_parent(
            ctx.db,
            base=base,
            entity=Comment,
            parent=Comment.version_id,
            order_by=_TIMELINE_ORDER,
            page=page,
        ),
    )
    count = ctx.loaders.get(
        "comments_of_version_count",
        lambda: count_by_parent(ctx.db, base=base, parent=Comment.version_id),
    )
    return build_connection(
        await rows.load(version_id), page, CommentNode.from_row, lambda: count.load(version_id)
    )


@strawberry.input
class AddCommentInput:
    version_id: strawberry.ID
    body: str
    at_ms: int | None = strawberry.field(default=None, description="The moment, in ms.")
    end_ms: int | None = strawberry.field(default=None, description="End of a span, in ms.")
    parent_id: strawberry.ID | None = strawberry.field(default=None, description="To reply.")


_REACTION_TARGETS = {
    "Track": ReactionTarget.TRACK,
    "TrackVersion": ReactionTarget.VERSION,
    "Comment": ReactionTarget.COMMENT,
}


def _reaction_target(target_id: str) -> tuple[ReactionTarget, int]:
    type_name, pk = parse_global_id(target_id, field="targetId")
    if type_name not in _REACTION_TARGETS:
        raise BadUserInput(
            "targetId must be the id of a Track, TrackVersion or Comment.", field="targetId"
        )
    return _REACTION_TARGETS[type_name], pk


async def _announce_reaction(info: Info, target_type: ReactionTarget, target_id: int) -> None:
    access = await info.context.access()
    band_id = await service.band_of_target(
        db_session=info.context.db.session, target_type=target_type, target_id=target_id
    )
    if band_id is not None and access.can_view(band_id):
        event = {
            "type": "ReactionChanged",
            "target_type": target_type.value,
            "target_id": target_id,
        }
        await info.context.announce(band_id, event)


@strawberry.type
class FeedbackMutations:
    @strawberry.mutation
    async def add_comment(self, info: Info, input: AddCommentInput) -> CommentNode:
        version_id = from_global_id(input.version_id, expected="TrackVersion", field="versionId")
        parent_id = (
            from_global_id(input.parent_id, expected="Comment", field="parentId")
            if input.parent_id
            else None
        )
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            comment = await service.add_comment(
                db_session=db_session,
                access=access,
                version_id=version_id,
                body=input.body,
                at_ms=input.at_ms,
                end_ms=input.end_ms,
                parent_id=parent_id,
            )
        await info.context.announce(
            comment.band_id, {"type": "CommentAdded", "comment_id": comment.id}
        )
        return CommentNode.from_row(comment)

    @strawberry.mutation
    async def edit_comment(self, info: Info, id: strawberry.ID, body: str) -> CommentNode:
        comment_id = from_global_id(id, expected="Comment")
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            comment = await service.edit_comment(
                db_session=db_session, access=access, comment_id=comment_id, body=body
            )
        return CommentNode.from_row(comment)

    @strawberry.mutation
    async def delete_comment(self, info: Info, id: strawberry.ID) -> bool:
        comment_id = from_global_id(id, expected="Comment")
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            await service.delete_comment(
                db_session=db_session, access=access, comment_id=comment_id
            )
        return True

    @strawberry.mutation
    async def resolve_comment(self, info: Info, id: strawberry.ID, resolved: bool) -> CommentNode:
        comment_id = from_global_id(id, expected="Comment")
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            comment = await service.resolve_comment(
                db_session=db_session, access=access, comment_id=comment_id, resolved=resolved
            )
        return CommentNode.from_row(comment)

    @strawberry.mutation(description="React to a track, version or comment.")
    async def react(
        self, info: Info, target_id: strawberry.ID, kind: ReactionKind
    ) -> ReactionSummary:
        target_type, pk = _reaction_target(target_id)
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            await service.react(
                db_session=db_session,
                access=access,
                target_type=target_type,
                target_id=pk,
                kind=kind,
            )
        await _announce_reaction(info, target_type, pk)
        return await reaction_summary(info, target_type, pk)

    @strawberry.mutation
    async def unreact(
        self, info: Info, target_id: strawberry.ID, kind: ReactionKind
    ) -> ReactionSummary:
        target_type, pk = _reaction_target(target_id)
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            await service.unreact(
                db_session=db_session,
                access=access,
                target_type=target_type,
                target_id=pk,
                kind=kind,
            )
        await _announce_reaction(info, target_type, pk)
        return await reaction_summary(info, target_type, pk)


# Imported last: these modules refer back to the types above.
from backend.accounts import graphql as accounts_graphql  # noqa: E402
from backend.library.graphql import loaders as library_loaders  # noqa: E402
from backend.library.graphql import types as library_types  # noqa: E402
