"""Uploads over GraphQL: a file through the API (the GraphQL multipart request spec), or
a large one in parts straight to S3 (createUpload → PUT the parts → completeUpload)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import strawberry
from strawberry.file_uploads import Upload

from backend.graphql.context import Context, Info
from backend.graphql.relay import from_global_id, to_global_id
from backend.library.graphql.types import TrackVersionNode
from backend.media import uploads
from backend.media.graphql.types import storage_of
from backend.media.models import PendingUpload

UPLOAD_CHUNK = 1 << 20


@strawberry.type(description="One part of a direct upload: PUT its bytes to the url.")
class UploadPart:
    part_number: int
    url: str


@strawberry.type(
    description="A file being uploaded in parts straight to storage: PUT each part to its "
    "url (any order, several at once), then call completeUpload. Interrupted? uploadStatus "
    "says which parts arrived; ask uploadPartUrls for fresh links to the rest."
)
class DirectUpload:
    id: strawberry.ID
    part_size: float = strawberry.field(description="Bytes in every part but the last.")
    part_count: int
    parts: list[UploadPart] = strawberry.field(description="Links valid for 6 hours.")
    uploaded_part_numbers: list[int]


def _direct_upload(
    pending: PendingUpload, parts: list[uploads.PartUrl], uploaded: list[int]
) -> DirectUpload:
    return DirectUpload(
        id=strawberry.ID(to_global_id("Upload", pending.id)),
        part_size=float(pending.part_size),
        part_count=uploads.part_count(pending),
        parts=[UploadPart(part_number=part.part_number, url=part.url) for part in parts],
        uploaded_part_numbers=uploaded,
    )


async def _chunks(file: Any) -> AsyncIterator[bytes]:
    while chunk := await file.read(UPLOAD_CHUNK):
        yield chunk


def _take(
    band_id: strawberry.ID, filename: str, track_id: strawberry.ID | None, session_date: date | None
) -> uploads.NewTake:
    return uploads.NewTake(
        band_id=from_global_id(band_id, expected="Band", field="bandId"),
        filename=filename,
        track_id=from_global_id(track_id, expected="Track", field="trackId") if track_id else None,
        session_date=session_date,
    )


@strawberry.type
class MediaMutations:
    @strawberry.mutation(
        description="Upload a take (GraphQL multipart request). It becomes a version of the "
        "track given, else of the track its file name names; probing, analysis and "
        "transcoding follow on jobProgress and bandEvents."
    )
    async def upload_version(
        self,
        info: Info,
        band_id: strawberry.ID,
        file: Upload,
        track_id: strawberry.ID | None = None,
        session_date: date | None = None,
    ) -> TrackVersionNode:
        ctx = info.context
        take = _take(band_id, getattr(file, "filename", None) or "", track_id, session_date)
        access = await ctx.access()
        await ctx.queue.check_available()
        async with ctx.transaction() as db_session:
            uploaded = await uploads.upload(
                db_session=db_session,
                storage=storage_of(ctx),
                settings=ctx.settings,
                access=access,
                take=take,
                chunks=_chunks(file),
            )
        await _after_commit(ctx, uploaded)
        return TrackVersionNode.from_row(uploaded.version)

    @strawberry.mutation(description="Start uploading a large file in parts (S3 storage only).")
    async def create_upload(
        self,
        info: Info,
        band_id: strawberry.ID,
        filename: str,
        size_bytes: float,
        track_id: strawberry.ID | None = None,
        session_date: date | None = None,
    ) -> DirectUpload:
        ctx = info.context
        take = _take(band_id, filename, track_id, session_date)
        access = await ctx.access()
        async with ctx.transaction() as db_session:
            pending, parts = await uploads.create_direct_upload(
                db_session=db_session,
                storage=storage_of(ctx),
                settings=ctx.settings,
                access=access,
                take=take,
                size_bytes=int(size_bytes),
            )
        return _direct_upload(pending, parts, [])

    @strawberry.mutation(description="Fresh links for parts of an unfinished upload.")
    async def upload_part_urls(
        self, info: Info, upload_id: strawberry.ID, part_numbers: list[int]
    ) -> DirectUpload:
        ctx = info.context
        pending = await _pending(info, upload_id)
        storage = storage_of(ctx)
        parts = await uploads.part_urls(storage=storage, pending=pending, part_numbers=part_numbers)
        listed = await storage.list_parts(pending.storage_key, pending.upload_id)
        return _direct_upload(pending, parts, [part.part_number for part in listed])

    @strawberry.mutation(description="Join the uploaded parts into a take.")
    async def complete_upload(self, info: Info, upload_id: strawberry.ID) -> TrackVersionNode:
        ctx = info.context
        access = await ctx.access()
        await ctx.queue.check_available()
        pk = from_global_id(upload_id, expected="Upload", field="uploadId")
        async with ctx.transaction() as db_session:
            pending = await uploads.pending_upload(
                db_session=db_session, access=access, upload_id=pk
            )
            uploaded = await uploads.complete_direct_upload(
                db_session=db_session,
                storage=storage_of(ctx),
                settings=ctx.settings,
                access=access,
                pending=pending,
            )
        await _after_commit(ctx, uploaded)
        return TrackVersionNode.from_row(uploaded.version)

    @strawberry.mutation(description="Give up an unfinished upload; its parts are dropped.")
    async def abort_upload(self, info: Info, upload_id: strawberry.ID) -> bool:
        ctx = info.context
        access = await ctx.access()
        pk = from_global_id(upload_id, expected="Upload", field="uploadId")
        async with ctx.transaction() as db_session:
            pending = await uploads.pending_upload(
                db_session=db_session, access=access, upload_id=pk
            )
            await uploads.abort_direct_upload(
                db_session=db_session, storage=storage_of(ctx), pending=pending
            )
        return True


@strawberry.type
class MediaQueries:
    @strawberry.field(description="An unfinished direct upload of the viewer's.")
    async def upload_status(self, info: Info, upload_id: strawberry.ID) -> DirectUpload:
        pending = await _pending(info, upload_id)
        listed = await storage_of(info.context).list_parts(pending.storage_key, pending.upload_id)
        return _direct_upload(pending, [], [part.part_number for part in listed])


async def _pending(info: Info, upload_id: strawberry.ID) -> PendingUpload:
    ctx = info.context
    access = await ctx.access()
    pk = from_global_id(upload_id, expected="Upload", field="uploadId")
    async with ctx.db.reading() as db_session:
        return await uploads.pending_upload(db_session=db_session, access=access, upload_id=pk)


async def _after_commit(ctx: Context, uploaded: uploads.Uploaded) -> None:
    # The take is announced before its jobs go out, so the band hears of it before any
    # JobUpdated about it (a worker may pick a job up at once).
    await ctx.announce(
        uploaded.version.band_id, {"type": "VersionAdded", "version_id": uploaded.version.id}
    )
    await ctx.queue.send_committed(uploaded.jobs, session_factory=ctx.session_factory)
