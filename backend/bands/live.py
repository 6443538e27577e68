"""bandEvents: everything new in a band, live, so a band's app never has to poll."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry

from backend.accounts.graphql import user_loader
from backend.accounts.models import User
from backend.feedback.graphql import CommentNode, ReactionSummary, reaction_summary
from backend.feedback.models import Comment, ReactionTarget
from backend.graphql.context import Context, Info
from backend.graphql.relay import from_global_id, to_global_id
from backend.jobs import service as jobs_service
from backend.jobs.graphql import JobNode
from backend.library.graphql import loaders as library_loaders
from backend.library.graphql.types import TrackVersionNode
from backend.library.models import Track, TrackVersion


@strawberry.type(description="A new take: from a scan, a watched folder or an upload.")
class VersionAdded:
    version: TrackVersionNode


@strawberry.type(description="A take changed: moved, analysed, its status, ...")
class VersionUpdated:
    version: TrackVersionNode


@strawberry.type
class CommentAdded:
    comment: CommentNode


@strawberry.type
class ReactionChanged:
    target_id: strawberry.ID
    summary: ReactionSummary


@strawberry.type
class JobUpdated:
    job: JobNode


BandEvent = Annotated[
    VersionAdded | VersionUpdated | CommentAdded | ReactionChanged | JobUpdated,
    strawberry.union("BandEvent"),
]

logger = logging.getLogger("backline.live")

_TARGET_TYPE_NAMES = {
    ReactionTarget.TRACK: "Track",
    ReactionTarget.VERSION: "TrackVersion",
    ReactionTarget.COMMENT: "Comment",
}


# The bus hands every subscriber in this process the same message object, so one load
# per event serves them all: 5,000 subscribers cost one query, not 5,000. The rows an
# event's usual selection needs next (a comment's author, a take's track) are shared the
# same way and primed into each subscriber's loaders.
_SHARED_LOADS = 256
_loads: OrderedDict[tuple[int, str, int], tuple[dict[str, Any], asyncio.Task[Any]]] = OrderedDict()


async def _row(ctx: Context, event: dict[str, Any], model: type, pk: int) -> Any:
    key = (id(event), model.__name__, pk)
    entry = _loads.get(key)
    if entry is None or entry[0] is not event:  # a new event (ids are reused once freed)
        entry = (event, asyncio.create_task(_load(ctx, model, pk)))
        _loads[key] = entry
        while len(_loads) > _SHARED_LOADS:
            _loads.popitem(last=False)
    # Shielded: a subscriber leaving must not cancel the load the others wait for.
    return await asyncio.shield(entry[1])


async def _load(ctx: Context, model: type, pk: int) -> Any:
    async with ctx.session_factory() as db_session:
        return await db_session.get(model, pk)


async def _to_event(info: Info, event: dict[str, Any]) -> Any:
    """The GraphQL object of a bus event, or None when what it names is gone."""
    ctx = info.context
    kind = event.get("type")
    if kind in {"VersionAdded", "VersionUpdated"}:
        row = await _row(ctx, event, TrackVersion, event["version_id"])
        if row is None:
            return None
        track = await _row(ctx, event, Track, row.track_id)
        library_loaders.track(ctx).prime(row.track_id, track)
        node = TrackVersionNode.from_row(row)
        return (
            VersionAdded(version=node) if kind == "VersionAdded" else VersionUpdated(version=node)
        )
    if kind == "CommentAdded":
        row = await _row(ctx, event, Comment, event["comment_id"])
        if row is None:
            return None
        author = await _row(ctx, event, User, row.author_id)
        user_loader(ctx).prime(row.author_id, author)
        return CommentAdded(comment=CommentNode.from_row(row))
    if kind == "ReactionChanged":
        target = ReactionTarget(event["target_type"])
        summary = await reaction_summary(info, target, event["target_id"])
        global_id = to_global_id(_TARGET_TYPE_NAMES[target], event["target_id"])
        return ReactionChanged(target_id=global_id, summary=summary)
    if kind == "JobUpdated":
        return JobUpdated(job=JobNode.from_row(jobs_service.from_snapshot(event["job"])))
    return None


@strawberry.type
class BandSubscriptions:
    @strawberry.subscription(description="Everything new in one of the viewer's bands, live.")
    async def band_events(
        self, info: Info, band_id: strawberry.ID
    ) -> AsyncGenerator[BandEvent, None]:
        ctx = info.context
        ctx.require_viewer()
        pk = from_global_id(band_id, expected="Band", field="bandId")
        (await ctx.fresh_access()).require_member(pk, what="band")
        async with ctx.bus.subscribe(f"band:{pk}") as events:
            async for event in events:
                try:
                    item = await _to_event(info, event)
                except Exception:  # one event that cannot be loaded must not end the stream
                    logger.exception("band %s: event %s not delivered", pk, event.get("type"))
                    continue
                if item is not None:
                    yield item
                    await ctx.between_events()
