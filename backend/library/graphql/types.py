"""GraphQL types of the library: sources, rehearsal sessions, tracks, versions."""

from __future__ import annotations

from datetime import date, datetime

import strawberry
from strawberry.dataloader import DataLoader

from backend.core import validation
from backend.feedback import graphql as feedback_graphql
from backend.feedback.models import ReactionTarget
from backend.graphql.context import Context, Info
from backend.graphql.nodes import RowNode
from backend.graphql.relay import (
    Connection,
    Node,
    build_connection,
    from_global_id,
    page_request,
)
from backend.jobs import graphql as jobs_graphql
from backend.library import repository
from backend.library.graphql import loaders
from backend.library.models import (
    RehearsalSession,
    Source,
    SourceKind,
    Track,
    TrackStatus,
    TrackVersion,
    VersionStatus,
)
from backend.media.graphql import types as media_graphql
from backend.media.models import Analysis

strawberry.enum(SourceKind)
strawberry.enum(TrackStatus)
strawberry.enum(VersionStatus)
TrackOrder = strawberry.enum(repository.TrackOrder)


@strawberry.type(name="Source")
class SourceNode(RowNode, Node):
    id: strawberry.ID
    kind: SourceKind
    name: str
    root: str
    watch: bool
    created_at: datetime
    row: strawberry.Private[Source]

    @classmethod
    def row_loader(cls, ctx: Context) -> DataLoader[int, Source | None]:
        return loaders.source(ctx)

    @classmethod
    def is_listed(cls, row: Source) -> bool:
        return row.removed_at is None

    @strawberry.field(description="The newest scan of this source.")
    async def last_scan(self, info: Info) -> jobs_graphql.JobNode | None:
        return await jobs_graphql.last_scan_of_source(info, self.row.id)


@strawberry.type(name="RehearsalSession")
class RehearsalSessionNode(RowNode, Node):
    id: strawberry.ID
    date: date
    label: str | None
    notes: str | None
    row: strawberry.Private[RehearsalSession]

    @classmethod
    def row_loader(cls, ctx: Context) -> DataLoader[int, RehearsalSession | None]:
        return loaders.session(ctx)

    @strawberry.field
    async def band(self, info: Info) -> bands_graphql.BandNode:
        return await bands_graphql.band_of(info, self.row.band_id)

    @strawberry.field(description="The takes recorded that day, in the order they came in.")
    async def versions(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[TrackVersionNode]:
        page = page_request(first, after)
        rows, count = loaders.versions_of_session(info.context, page)
        return build_connection(
            await rows.load(self.row.id),
            page,
            TrackVersionNode.from_row,
            lambda: count.load(self.row.id),
        )

    @strawberry.field
    async def track_count(self, info: Info) -> int:
        return await loaders.track_count_by_session(info.context).load(self.row.id)

    @strawberry.field
    async def version_count(self, info: Info) -> int:
        return await loaders.version_count_by_session(info.context).load(self.row.id)


@strawberry.type(name="Track")
class TrackNode(RowNode, Node):
    id: strawberry.ID
    title: str
    status: TrackStatus
    bpm: float | None = strawberry.field(description="A person's value, else the first analysis.")
    key: str | None = strawberry.field(description="A person's value, else the first analysis.")
    notes: str | None
    created_at: datetime
    last_recorded_at: datetime | None
    last_commented_at: datetime | None
    row: strawberry.Private[Track]

    @classmethod
    def row_loader(cls, ctx: Context) -> DataLoader[int, Track | None]:
        return loaders.track(ctx)

    @strawberry.field
    async def band(self, info: Info) -> bands_graphql.BandNode:
        return await bands_graphql.band_of(info, self.row.band_id)

    @strawberry.field
    async def tags(self, info: Info) -> list[str]:
        return [tag for _, tag in await loaders.tags_by_track(info.context).load(self.row.id)]

    @strawberry.field(description="Newest first.")
    async def versions(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[TrackVersionNode]:
        page = page_request(first, after)
        rows, count = loaders.versions_of_track(info.context, page)
        return build_connection(
            await rows.load(self.row.id),
            page,
            TrackVersionNode.from_row,
            lambda: count.load(self.row.id),
        )

    @strawberry.field
    async def latest_version(self, info: Info) -> TrackVersionNode | None:
        rows = await loaders.latest_version_by_track(info.context).load(self.row.id)
        return TrackVersionNode.from_row(rows[0]) if rows else None

    @strawberry.field(description="The rehearsal sessions it was recorded in, newest first.")
    async def sessions(self, info: Info) -> list[RehearsalSessionNode]:
        rows = await loaders.sessions_by_track(info.context).load(self.row.id)
        return [RehearsalSessionNode.from_row(session) for session, _ in rows]

    @strawberry.field(description="Comments on all its versions (deleted ones not counted).")
    async def comment_count(self, info: Info) -> int:
        return await loaders.comment_count_by_track(info.context).load(self.row.id)

    @strawberry.field
    async def reactions(self, info: Info) -> feedback_graphql.ReactionSummary:
        return await feedback_graphql.reaction_summary(info, ReactionTarget.TRACK, self.row.id)


@strawberry.type(name="Analysis")
class AnalysisType:
    bpm: float | None
    bpm_confidence: float | None
    key: str | None
    scale: str | None
    key_strength: float | None
    loudness_lufs: float | None
    loudness_range_lu: float | None
    true_peak_dbtp: float | None
    analyzed_at: datetime

    @classmethod
    def from_row(cls, row: Analysis) -> AnalysisType:
        return cls(
            bpm=row.bpm,
            bpm_confidence=row.bpm_confidence,
            key=row.key,
            scale=row.scale,
            key_strength=row.key_strength,
            loudness_lufs=row.loudness_lufs,
            loudness_range_lu=row.loudness_range_lu,
            true_peak_dbtp=row.true_peak_dbtp,
            analyzed_at=row.analyzed_at,
        )


@strawberry.type(name="TrackVersion")
class TrackVersionNode(RowNode, Node):
    id: strawberry.ID
    number: int
    label: str
    path: str | None
    original_filename: str
    format: str | None
    codec: str | None = strawberry.field(description="The audio codec, once probed.")
    size_bytes: float | None = strawberry.field(description="A Float: files pass 2 GiB.")
    duration_ms: int | None
    sample_rate: int | None
    channels: int | None
    bitrate: int | None
    status: VersionStatus
    failure_reason: str | None
    recorded_at: datetime | None
    created_at: datetime
    row: strawberry.Private[TrackVersion]

    @classmethod
    def row_loader(cls, ctx: Context) -> DataLoader[int, TrackVersion | None]:
        return loaders.version(ctx)

    @strawberry.field
    async def track(self, info: Info) -> TrackNode:
        row = await loaders.track(info.context).load(self.row.track_id)
        assert row is not None
        return TrackNode.from_row(row)

    @strawberry.field
    async def session(self, info: Info) -> RehearsalSessionNode | None:
        if self.row.session_id is None:
            return None
        row = await loaders.session(info.context).load(self.row.session_id)
        return RehearsalSessionNode.from_row(row) if row else None

    @strawberry.field
    async def analysis(self, info: Info) -> AnalysisType | None:
        row = await loaders.analysis_by_version(info.context).load(self.row.id)
        return AnalysisType.from_row(row) if row else None

    @strawberry.field(description="The title, artist, album and date the file's own tags give.")
    def embedded_tags(self) -> media_graphql.EmbeddedTags | None:
        return media_graphql.embedded_tags(self.row)

    @strawberry.field(
        description="Peaks to draw, once analysed; samplesPerPixel picks a zoom level (see "
        "zoomLevels), else the finest that draws the whole take in at most 20,000 pixels."
    )
    async def waveform(
        self, info: Info, samples_per_pixel: int | None = None
    ) -> media_graphql.Waveform | None:
        return await media_graphql.waveform_of(info, self.row, samples_per_pixel)

    @strawberry.field(description="Signed, expiring links to play the take.")
    async def streams(self, info: Info) -> media_graphql.Streams | None:
        return await media_graphql.streams_of(info, self.row)

    @strawberry.field(description="Top-level comments in the order of the moments they are on.")
    async def comments(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[feedback_graphql.CommentNode]:
        return await feedback_graphql.comments_of_version(info, self.row.id, first, after)

    @strawberry.field
    async def reactions(self, info: Info) -> feedback_graphql.ReactionSummary:
        return await feedback_graphql.reaction_summary(info, ReactionTarget.VERSION, self.row.id)


@strawberry.input(name="TrackFilter", description="Every condition given must hold.")
class TrackFilterInput:
    query: str | None = strawberry.field(default=None, description="Part of the title.")
    tags: list[str] | None = strawberry.field(default=None, description="Has all these tags.")
    key: str | None = None
    bpm_min: float | None = None
    bpm_max: float | None = None
    session_id: strawberry.ID | None = strawberry.field(
        default=None, description="Has a take from this rehearsal session."
    )
    unattributed: bool | None = strawberry.field(
        default=None,
        description="true: has a take that belongs to no rehearsal session; false: has none.",
    )
    status: list[TrackStatus] | None = None


def to_track_filter(given: TrackFilterInput | None) -> repository.TrackFilter:
    if given is None:
        return repository.TrackFilter()
    session_id = (
        from_global_id(given.session_id, expected="RehearsalSession", field="filter.sessionId")
        if given.session_id
        else None
    )
    # The same cleaning as what is searched for was stored with (see library.service).
    return repository.TrackFilter(
        query=validation.optional_text(given.query, field="filter.query", max_length=200),
        tags=tuple(
            validation.text(tag, field="filter.tags", max_length=50, required=False)
            for tag in given.tags or ()
        ),
        key=validation.optional_text(given.key, field="filter.key", max_length=20),
        bpm_min=given.bpm_min,
        bpm_max=given.bpm_max,
        session_id=session_id,
        unattributed=given.unattributed,
        statuses=tuple(given.status or ()),
    )


# Imported last: the band module refers back to the types above.
from backend.bands import graphql as bands_graphql  # noqa: E402

__all__ = [
    "RehearsalSessionNode",
    "SourceNode",
    "TrackFilterInput",
    "TrackNode",
    "TrackOrder",
    "TrackVersionNode",
    "to_track_filter",
]
