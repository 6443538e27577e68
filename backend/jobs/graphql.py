"""GraphQL for background jobs (their progress, counters and errors)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from sqlalchemy import select
from strawberry.dataloader import DataLoader

from backend.core.errors import NotFound
from backend.graphql.context import Context, Info
from backend.graphql.dataloaders import count_by_parent, page_by_parent, rows_by_key
from backend.graphql.nodes import RowNode
from backend.graphql.relay import (
    Connection,
    Node,
    PageRequest,
    build_connection,
    from_global_id,
    page_request,
)
from backend.jobs import service as jobs_service
from backend.jobs.models import Job, JobKind, JobStatus

if TYPE_CHECKING:
    from backend.library.graphql.types import TrackVersionNode

strawberry.enum(JobKind)
strawberry.enum(JobStatus)

_NEWEST_FIRST = [Job.created_at.desc(), Job.id.desc()]


def _job(ctx: Context) -> DataLoader[int, Job | None]:
    return ctx.loaders.get("job", lambda: rows_by_key(ctx.db, Job))


@strawberry.type
class JobError:
    path: str | None
    message: str


@strawberry.type(name="Job")
class JobNode(RowNode, Node):
    id: strawberry.ID
    kind: JobKind
    status: JobStatus
    progress: float = strawberry.field(description="0 to 1.")
    processed: int
    total: int | None
    added: int
    updated: int
    skipped: int
    failed: int
    message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    row: strawberry.Private[Job]

    @classmethod
    def row_loader(cls, ctx: Context) -> DataLoader[int, Job | None]:
        return _job(ctx)

    @strawberry.field(description="The take a media job (probe, analyze, transcode) works on.")
    async def version(
        self, info: Info
    ) -> Annotated[TrackVersionNode, strawberry.lazy("backend.library.graphql.types")] | None:
        if self.row.version_id is None:
            return None
        from backend.library.graphql.types import TrackVersionNode

        return await TrackVersionNode.resolve_node(info, self.row.version_id)

    @strawberry.field
    def errors(self) -> list[JobError]:
        return [
            JobError(path=error.get("path"), message=str(error.get("message", "")))
            for error in self.row.errors or []
        ]


async def last_scan_of_source(info: Info, source_id: int) -> JobNode | None:
    ctx = info.context
    loader = ctx.loaders.get(
        "last_scan_of_source",
        lambda: page_by_parent(
            ctx.db,
            base=select(Job).where(Job.kind == JobKind.SCAN),
            entity=Job,
            parent=Job.source_id,
            order_by=_NEWEST_FIRST,
            page=PageRequest(offset=0, limit=0),
        ),
    )
    rows = await loader.load(source_id)
    return JobNode.from_row(rows[0]) if rows else None


async def jobs_of_band(
    info: Info,
    band_id: int,
    first: int | None,
    after: str | None,
    statuses: list[JobStatus] | None,
) -> Connection[JobNode]:
    ctx = info.context
    page = page_request(first, after)
    wanted = tuple(statuses or ())
    base = select(Job).where(Job.status.in_(wanted)) if wanted else select(Job)
    rows = ctx.loaders.get(
        ("jobs_of_band", page, wanted),
        lambda: page_by_parent(
            ctx.db, base=base, entity=Job, parent=Job.band_id, order_by=_NEWEST_FIRST, page=page
        ),
    )
    count = ctx.loaders.get(
        ("jobs_of_band_count", wanted),
        lambda: count_by_parent(ctx.db, base=base, parent=Job.band_id),
    )
    return build_connection(
        await rows.load(band_id), page, JobNode.from_row, lambda: count.load(band_id)
    )


@strawberry.type
class JobQueries:
    @strawberry.field(description="A job of one of the viewer's bands.")
    async def job(self, info: Info, id: strawberry.ID) -> JobNode:
        info.context.require_viewer()
        node = await JobNode.resolve_node(info, from_global_id(id, expected="Job"))
        if node is None:
            raise NotFound("job")
        return node


@strawberry.type
class JobSubscriptions:
    @strawberry.subscription(
        description="The job's state at once, then every change; ends when the job ends."
    )
    async def job_progress(
        self, info: Info, job_id: strawberry.ID
    ) -> AsyncGenerator[JobNode, None]:
        ctx = info.context
        ctx.require_viewer()
        pk = from_global_id(job_id, expected="Job", field="jobId")
        access = await ctx.fresh_access()
        # Subscribe before reading the current state, so no change falls in between.
        async with ctx.bus.subscribe(f"job:{pk}") as updates:
            async with ctx.session_factory() as db_session:
                job = await db_session.get(Job, pk)
            if job is None or not access.can_view(job.band_id):
                raise NotFound("job")
            yield JobNode.from_row(job)
            if job.status in jobs_service.ENDED:
                return
            async for update in updates:
                yield JobNode.from_row(jobs_service.from_snapshot(update))
                if update["finished"]:
                    return
