"""bandEvents: everything new in a band, live, so a band's app never has to poll."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Sequence
from typing import Annotated, Any

import strawberry
from sqlalchemy import select

from backend.accounts.graphql import user_loader
from backend.accounts.models import User
from backend.bands import membership
from backend.core.errors import BacklineError, NotFound
from backend.core.events import Message
from backend.feedback.graphql import CommentNode, ReactionCount, ReactionSummary
from backend.feedback.models import Comment, Reaction, ReactionKind, ReactionTarget
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
    target: strawberry.Private[tuple[ReactionTarget, int]]
    event: strawberry.Private[Message]

    @strawberry.field
    async def summary(self, info: Info) -> ReactionSummary:
        ctx = info.context
        target_type, target_id = self.target
        reactors = await _shared(
            self.event,
            ("reactions", target_type, target_id),
            lambda: _reactors(ctx, target_type, target_id),
        )
        # Who the viewer is matters only where viewerReacted is asked for: without it,
        # every subscriber gets the same summary and the multiplexer executes it once.
        if _selects(info.selected_fields, "viewerReacted"):
            return _summary(reactors, ctx.viewer_id)
        return _summary(reactors, None)


async def _reactors(
    ctx: Context, target_type: ReactionTarget, target_id: int
) -> dict[ReactionKind, frozenset[int]]:
    """Who reacted with each kind: one read per event, whoever asks."""
    async with ctx.session_factory() as db_session:
        rows = await db_session.execute(
            select(Reaction.kind, Reaction.user_id).where(
                Reaction.target_type == target_type, Reaction.target_id == target_id
            )
        )
        users: dict[ReactionKind, set[int]] = {}
        for kind, user_id in rows:
            users.setdefault(kind, set()).add(user_id)
    return {kind: frozenset(ids) for kind, ids in users.items()}


def _summary(
    reactors: dict[ReactionKind, frozenset[int]], viewer_id: int | None
) -> ReactionSummary:
    # As feedback.graphql's summaries: kinds with at least one, in ReactionKind's order.
    # Without a viewer, viewerReacted is not selected and its False is never sent.
    counts = [
        ReactionCount(kind=kind, count=len(users), viewer_reacted=viewer_id in users)
        for kind in ReactionKind
        if (users := reactors.get(kind))
    ]
    return ReactionSummary(total=sum(count.count for count in counts), counts=counts)


def _selects(selections: Sequence[Any], name: str) -> bool:
    """Whether a field of that name is anywhere in the selection, fragments included."""
    return any(
        getattr(selection, "name", None) == name or _selects(selection.selections, name)
        for selection in selections
    )


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
# same way and primed into each subscriber's loaders, and so is the band's member list.
_SHARED_LOADS = 256
_loads: OrderedDict[tuple[int, Hashable], tuple[Message, asyncio.Task[Any]]] = OrderedDict()


async def _shared(event: Message, key: Hashable, load: Callable[[], Awaitable[Any]]) -> Any:
    entry_key = (id(event), key)
    entry = _loads.get(entry_key)
    if entry is None or entry[0] is not event:  # a new event (ids are reused once freed)
        entry = (event, asyncio.create_task(load()))
        _loads[entry_key] = entry
        while len(_loads) > _SHARED_LOADS:
            _loads.popitem(last=False)
    # Shielded: a subscriber leaving must not cancel the load the others wait for.
    return await asyncio.shield(entry[1])


async def _row(ctx: Context, event: Message, model: type, pk: int) -> Any:
    async def load() -> Any:
        async with ctx.session_factory() as db_session:
            return await db_session.get(model, pk)

    return await _shared(event, (model.__name__, pk), load)


async def to_event(ctx: Context, event: Message) -> Any:
    """The GraphQL object of a bus event, or None when what it names is gone."""
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
        global_id = to_global_id(_TARGET_TYPE_NAMES[target], event["target_id"])
        return ReactionChanged(
            target_id=global_id, target=(target, event["target_id"]), event=event
        )
    if kind == "JobUpdated":
        return JobUpdated(job=JobNode.from_row(jobs_service.from_snapshot(event["job"])))
    return None


def _channel(band_id: int) -> str:
    return f"band:{band_id}"


async def members_now(ctx: Context, event: Message, band_id: int) -> frozenset[int]:
    """Who may still receive this event: someone who left the band stops receiving."""
    return await _shared(
        event,
        ("members", band_id),
        lambda: membership.member_ids(ctx.session_factory, band_id=band_id),
    )


class BandEventsSource:
    """bandEvents for the multiplexer (backend/graphql/multiplex.py): every subscriber of
    one band with the same selection shares one execution per event."""

    field_name = "bandEvents"

    async def admit(self, ctx: Context, arguments: dict[str, Any]) -> str | None:
        """The band's channel when the viewer may subscribe; None leaves the refusal to
        the resolver below, which says why (UNAUTHENTICATED, BAD_USER_INPUT, NOT_FOUND)."""
        try:
            viewer_id = ctx.viewer_id
            band_id = from_global_id(arguments.get("bandId"), expected="Band", field="bandId")
        except BacklineError:
            return None
        if viewer_id is None:
            return None
        is_member = await membership.is_member(
            ctx.session_factory, band_id=band_id, user_id=viewer_id
        )
        return _channel(band_id) if is_member else None

    def refusal(self) -> Exception:
        return NotFound("band")

    async def audience(self, ctx: Context, channel: str, event: Message) -> frozenset[int]:
        return await members_now(ctx, event, int(channel.removeprefix("band:")))

    async def to_root(self, ctx: Context, event: Message) -> Any:
        return await to_event(ctx, event)


@strawberry.type
class BandSubscriptions:
    @strawberry.subscription(description="Everything new in one of the viewer's bands, live.")
    async def band_events(
        self, info: Info, band_id: strawberry.ID
    ) -> AsyncGenerator[BandEvent, None]:
        # Most subscriptions never get here: the router's websocket handlers hand them to
        # the multiplexer. This serves the rest (and says why one is refused).
        ctx = info.context
        viewer_id = ctx.require_viewer()
        pk = from_global_id(band_id, expected="Band", field="bandId")
        if not await membership.is_member(ctx.session_factory, band_id=pk, user_id=viewer_id):
            raise NotFound("band")
        async with ctx.bus.subscribe(_channel(pk)) as events:
            async for event in events:
                try:
                    still_member = viewer_id in await members_now(ctx, event, pk)
                    item = await to_event(ctx, event) if still_member else None
                except Exception:  # one event that cannot be loaded must not end the stream
                    logger.exception("band %s: event %s not delivered", pk, event.get("type"))
                    continue
                if not still_member:
                    raise NotFound("band")
                if item is not None:
                    yield item
                    await ctx.between_events()
