"""Composition root: builds the FastAPI app (GraphQL, health checks) from settings."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection

from backend.accounts.oauth import routes as oauth_routes
from backend.core.database import create_engine, create_session_factory
from backend.core.events import create_event_bus
from backend.core.migrations import pending_migrations
from backend.core.settings import Settings, get_settings
from backend.graphql.context import Context
from backend.graphql.database import RequestDatabase
from backend.graphql.limits import BodySizeLimit
from backend.graphql.persisted.resolve import create_persisted_queries
from backend.graphql.request_id import RequestIdMiddleware, request_id_of
from backend.graphql.router import BacklineGraphQLRouter
from backend.graphql.schema import create_schema
from backend.jobs.queue import JobQueue
from backend.jobs.sweeper import sweep_forever
from backend.library.watching import SourceWatcher
from backend.media.originals_http import MediaReader
from backend.media.storage import create_storage
from backend.media.streaming import create_media_router
from backend.media.upload_limit import UploadSizeLimit
from workers import embedded as embedded_workers
from workers.broker import create_broker


class DatabaseNotMigrated(RuntimeError):
    pass


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = create_engine(settings.resolved_database_url)
    session_factory = create_session_factory(engine)
    # Per app: its abuse limits follow its settings and keep its callers' budgets.
    schema = create_schema(settings)
    # The trusted documents manifest is read here: a bad one refuses to build the app.
    persisted = create_persisted_queries(settings, session_factory)
    if schema.limits is not None:  # our own documents get the trusted ceilings
        schema.limits.is_trusted = persisted.is_trusted

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.require_migrated_database:
            current, head = await pending_migrations(engine)
            if current != head:
                await engine.dispose()
                raise DatabaseNotMigrated(
                    f"The database is at migration {current or '(none)'} but this code needs "
                    f"{head}. Run `backline migrate` first (`make run` does)."
                )
        bus = create_event_bus(settings)
        await bus.start()
        embedded = None
        if settings.redis_url or not settings.worker_threads:
            broker = create_broker(settings)
        else:
            embedded = embedded_workers.start(settings, bus.publish)
            broker = embedded.broker
        queue = JobQueue(broker)
        app.state.bus, app.state.queue = bus, queue
        # Made on the app's event loop: the S3 client belongs to the loop that opened it.
        storage = create_storage(settings)
        app.state.storage = storage
        app.state.media_reader = MediaReader(
            storage, session_factory=session_factory, settings=settings
        )
        sweeper = asyncio.create_task(sweep_forever(session_factory=session_factory, queue=queue))
        watcher = None
        if settings.watch_sources:
            watcher = asyncio.create_task(
                SourceWatcher(
                    session_factory=session_factory, settings=settings, queue=queue, bus=bus
                ).run()
            )
        # Everything loaded so far lives as long as the process: keep the collector from
        # walking it again on every full collection (bench/RESULTS.md: p95 halved).
        gc.collect()
        gc.freeze()
        # Full collections walk every live object, websockets included: at the default
        # thresholds they took ~35% of the api's CPU fanning an event out to 1,000
        # subscribers (bench/fanout.py). Cycles are rare here; collect them less often.
        gen0, gen1, _ = gc.get_threshold()
        gc.set_threshold(gen0, gen1, 100)
        try:
            yield
        finally:
            sweeper.cancel()
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
            else:
                broker.close()
            await bus.close()
            await storage.aclose()
            await persisted.aclose()
            if schema.limits is not None:
                await schema.limits.aclose()
            await engine.dispose()

    async def get_context(request: HTTPConnection) -> AsyncIterator[Context]:
        db = RequestDatabase(session_factory())
        try:
            context = Context(
                settings=settings,
                db=db,
                session_factory=session_factory,
                queue=request.app.state.queue,
                bus=request.app.state.bus,
                authorization=request.headers.get("authorization"),
                request_id=request_id_of(request),
                storage=request.app.state.storage,
                media_base_url=_media_base_url(settings, request),
                client_ip=request.client.host if request.client else None,
            )
            await context.authenticate()
            yield context
        finally:
            await db.close()

    app = FastAPI(title="Backline", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.persisted = persisted
    app.include_router(
        BacklineGraphQLRouter(
            schema,
            context_getter=get_context,
            graphql_ide=None if settings.is_production else "graphiql",
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_seconds),
            # uploadVersion: the GraphQL multipart request spec (a file as a form part).
            multipart_uploads_enabled=True,
            persisted=persisted,
            http_max_age=settings.http_get_max_age_seconds,
            http_private_max_age=settings.http_get_private_max_age_seconds,
        ),
        prefix="/graphql",
    )
    # Signed links read stored files and, for scanned takes, originals in their source.
    app.include_router(
        create_media_router(settings, reader=lambda request: request.app.state.media_reader)
    )
    app.add_middleware(UploadSizeLimit, settings=settings)
    app.add_middleware(BodySizeLimit, settings=settings)
    # OAuth sign-in: /auth/<provider>/login and /callback. Authlib keeps the state, nonce
    # and PKCE verifier in request.session: a signed cookie that only /auth/* sees.
    app.include_router(oauth_routes.create_oauth_router(settings))
    app.add_middleware(
        SessionMiddleware,
        secret_key=oauth_routes.session_secret(settings),
        session_cookie=oauth_routes.SESSION_COOKIE,
        path=oauth_routes.session_path(settings),
        max_age=oauth_routes.SESSION_MAX_AGE,
        same_site="lax",
        https_only=settings.is_production,
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """The process can serve: its database (and Redis, when configured) answer."""
        checks: dict[str, str] = {}
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as error:  # any failure means "not ready", reported, not raised
            checks["database"] = f"unavailable: {type(error).__name__}"
        if settings.redis_url:
            checks["redis"] = await _redis_check(settings.redis_url)
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    # Outermost, so every response says its request id (a 413 too) and logs can match it.
    app.add_middleware(RequestIdMiddleware)
    return app


def _media_base_url(settings: Settings, request: HTTPConnection) -> str:
    """Where players reach the media routes: the configured public URL, else the origin
    this client reached (http(s) also for a websocket, whose links are fetched over HTTP)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    scheme = {"ws": "http", "wss": "https"}.get(request.url.scheme, request.url.scheme)
    return f"{scheme}://{request.url.netloc}"


async def _redis_check(url: str) -> str:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
        return "ok"
    except Exception as error:  # reported in /readyz, never raised
        return f"unavailable: {type(error).__name__}"
    finally:
        await client.aclose()
