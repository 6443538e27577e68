"""Library mutations: tracks, versions and rehearsal sessions."""

from __future__ import annotations

import strawberry

from backend.graphql.context import Info
from backend.graphql.relay import from_global_id
from backend.library import service
from backend.library.graphql.types import RehearsalSessionNode, TrackNode, TrackVersionNode
from backend.library.models import TrackStatus


@strawberry.type
class LibraryMutations:
    @strawberry.mutation(description="A track with no recordings yet, e.g. a song idea.")
    async def create_track(
        self,
        info: Info,
        band_id: strawberry.ID,
        title: str,
        status: TrackStatus = TrackStatus.IDEA,
        tags: list[str] | None = None,
    ) -> TrackNode:
        band_pk = from_global_id(band_id, expected="Band", field="bandId")
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            track = await service.create_track(
                db_session=db_session,
                access=access,
                band_id=band_pk,
                title=title,
                status=status,
                tags=tags,
            )
        return TrackNode.from_row(track)

    @strawberry.mutation(
        description="Change what is given; a bpm or key set here wins over analysis."
    )
    async def update_track(
        self,
        info: Info,
        id: strawberry.ID,
        title: str | None = None,
        status: TrackStatus | None = None,
        tags: list[str] | None = None,
        bpm: float | None = None,
        key: str | None = None,
        notes: str | None = None,
    ) -> TrackNode:
        track_id = from_global_id(id, expected="Track")
        changes = service.TrackChanges(
            title=title, status=status, tags=tags, bpm=bpm, key=key, notes=notes
        )
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            track = await service.update_track(
                db_session=db_session, access=access, track_id=track_id, changes=changes
            )
        return TrackNode.from_row(track)

    @strawberry.mutation(
        description="Make a take a version of another track; it becomes its newest."
    )
    async def move_version(
        self, info: Info, version_id: strawberry.ID, track_id: strawberry.ID
    ) -> TrackVersionNode:
        version_pk = from_global_id(version_id, expected="TrackVersion", field="versionId")
        track_pk = from_global_id(track_id, expected="Track", field="trackId")
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            version = await service.move_version(
                db_session=db_session, access=access, version_id=version_pk, track_id=track_pk
            )
        return TrackVersionNode.from_row(version)

    @strawberry.mutation(
        description="Move every version, tag and reaction of one track to another."
    )
    async def merge_tracks(
        self, info: Info, source_track_id: strawberry.ID, target_track_id: strawberry.ID
    ) -> TrackNode:
        source_pk = from_global_id(source_track_id, expected="Track", field="sourceTrackId")
        target_pk = from_global_id(target_track_id, expected="Track", field="targetTrackId")
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            track = await service.merge_tracks(
                db_session=db_session,
                access=access,
                source_track_id=source_pk,
                target_track_id=target_pk,
            )
        return TrackNode.from_row(track)

    @strawberry.mutation
    async def update_session(
        self, info: Info, id: strawberry.ID, label: str | None = None, notes: str | None = None
    ) -> RehearsalSessionNode:
        session_id = from_global_id(id, expected="RehearsalSession")
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            session = await service.update_session(
                db_session=db_session,
                access=access,
                session_id=session_id,
                label=label,
                notes=notes,
            )
        return RehearsalSessionNode.from_row(session)
