"""Source mutations: add, change and remove folders and shares; scan them."""

from __future__ import annotations

import strawberry

from backend.core.errors import NotFound
from backend.graphql.context import Info
from backend.graphql.relay import from_global_id
from backend.jobs import service as jobs_service
from backend.jobs.graphql import JobNode
from backend.jobs.models import Job
from backend.library import sources
from backend.library.graphql.types import SourceNode
from backend.library.models import Source, SourceKind
from backend.library.scanner.requests import request_scan
from backend.library.watching import sources_changed


@strawberry.input
class AddSourceInput:
    band_id: strawberry.ID
    kind: SourceKind
    name: str
    root: str = strawberry.field(description="A folder path on the server, or a WebDAV URL.")
    username: str | None = None
    password: str | None = strawberry.field(default=None, description="Stored encrypted.")
    watch: bool | None = False


@strawberry.type
class SourceMutations:
    @strawberry.mutation(description="Index a folder on the server or a WebDAV share (admins).")
    async def add_source(self, info: Info, input: AddSourceInput) -> SourceNode:
        new = sources.NewSource(
            band_id=from_global_id(input.band_id, expected="Band", field="bandId"),
            kind=input.kind,
            name=input.name,
            root=input.root,
            username=input.username,
            password=input.password,
            watch=bool(input.watch),
        )
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            source = await sources.add(
                db_session=db_session, access=access, settings=info.context.settings, new=new
            )
        await sources_changed(info.context.bus)
        return SourceNode.from_row(source)

    @strawberry.mutation(
        description="Rename a source, turn watching on or off, or give a WebDAV share a new "
        "username or password (an empty password removes it) (admins)."
    )
    async def update_source(
        self,
        info: Info,
        id: strawberry.ID,
        name: str | None = None,
        watch: bool | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> SourceNode:
        source_id = from_global_id(id, expected="Source")
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            source = await sources.update_source(
                db_session=db_session,
                access=access,
                source_id=source_id,
                settings=info.context.settings,
                name=name,
                watch=watch,
                username=username,
                password=password,
            )
        await sources_changed(info.context.bus)
        return SourceNode.from_row(source)

    @strawberry.mutation(
        description="Stop indexing a source (admins); its takes stay, marked MISSING."
    )
    async def remove_source(self, info: Info, id: strawberry.ID) -> bool:
        source_id = from_global_id(id, expected="Source")
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            await sources.remove(db_session=db_session, access=access, source_id=source_id)
        await sources_changed(info.context.bus)
        return True

    @strawberry.mutation(
        description="Scan a source; while one scan runs, asking again returns that scan."
    )
    async def scan_source(self, info: Info, source_id: strawberry.ID) -> JobNode:
        ctx = info.context
        pk = from_global_id(source_id, expected="Source", field="sourceId")
        access = await ctx.access()
        async with ctx.db.reading() as db_session:
            source = await access.fetch(
                db_session=db_session, model=Source, object_id=pk, what="source"
            )
            if source.removed_at is not None:
                raise NotFound("source")
            band_id = source.band_id
        job = await request_scan(
            session_factory=ctx.session_factory,
            queue=ctx.queue,
            band_id=band_id,
            source_id=pk,
            requested_by_id=access.user_id,
        )
        return JobNode.from_row(job)

    @strawberry.mutation(description="Stop a job: a queued one at once, a running one soon.")
    async def cancel_job(self, info: Info, id: strawberry.ID) -> JobNode:
        job_id = from_global_id(id, expected="Job")
        access = await info.context.access()
        async with info.context.transaction() as db_session:
            job: Job = await jobs_service.request_cancel(
                db_session=db_session, access=access, job_id=job_id
            )
        return JobNode.from_row(job)
