"""Fixtures: every test that takes ``client`` runs once on SQLite and once on PostgreSQL,
against the real app over HTTP (ASGI), on a database migrated by Alembic."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import QueueJoinTimeout
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.app import create_app
from backend.core.database import Base, create_engine
from backend.core.migrations import upgrade_to_head
from backend.core.settings import Settings
from tests import services
from tests.trusted_documents import write_manifest


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "backline.db"
        url = f"sqlite+aiosqlite:///{path}"
        await _migrate(url)
        yield url
        return
    try:
        url, name = await services.create_postgres_database()
    except (OSError, Exception) as error:  # any connection failure
        services.missing("PostgreSQL on 127.0.0.1:5432", error)
    try:
        await _migrate(url)
        yield url
    finally:
        await services.drop_postgres_database(name)


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def app_and_engine(database_url: str, tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("data")
    settings = Settings(
        database_url=database_url,
        data_dir=data_dir,
        allowed_roots=str(tmp_path_factory.getbasetemp()),
        secret_key="test-secret-key-that-is-long-enough-for-hs256",
        # The front-end pages among the tests' documents nest deeper than 6.
        trusted_documents=str(write_manifest(data_dir / "trusted-documents.json")),
        # Every test's users are user 1, 2, ... and all come from 127.0.0.1: one budget
        # for the whole run would run out. Charged and reported all the same;
        # tests/graphql/test_rate_limits.py spends small budgets of its own.
        rate_limit_points=10**9,
        rate_limit_anonymous_points=10**9,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app, app.state.engine


@dataclass
class StatementCounter:
    """Counts the SQL statements the app sends for the test while ``active``: only those
    sent from the test's own context (its requests), not by the app's background tasks
    (the job sweeper, the source watcher), which run on the same engine."""

    statements: list[str] = field(default_factory=list)
    _counting: contextvars.ContextVar[bool] = field(
        default_factory=lambda: contextvars.ContextVar("counting", default=False)
    )

    @property
    def active(self) -> bool:
        return self._counting.get()

    @active.setter
    def active(self, value: bool) -> None:
        self._counting.set(value)

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self._counting.get():
            self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
async def statement_counter(app_and_engine) -> AsyncIterator[StatementCounter]:
    _, engine = app_and_engine
    counter = StatementCounter()
    event.listen(engine.sync_engine, "before_cursor_execute", counter)
    yield counter
    event.remove(engine.sync_engine, "before_cursor_execute", counter)


@pytest.fixture
async def engine(app_and_engine) -> AsyncIterator[AsyncEngine]:
    """The app's engine, on an empty database (rows of earlier tests removed)."""
    app, engine = app_and_engine
    await _drop_media_work(app)
    await _empty_tables(engine)
    yield engine


async def _drop_media_work(app: Any) -> None:
    """Scans and uploads of earlier tests queue media work that the embedded workers
    would still be doing: drop what waits, let what runs finish, then empty the tables
    (a job must not write into the next test's rows, nor hold locks TRUNCATE needs)."""
    broker = app.state.queue.broker
    if not isinstance(broker, StubBroker) or "media" not in broker.queues:
        return
    broker.flush("media")
    with contextlib.suppress(QueueJoinTimeout):
        await asyncio.to_thread(broker.join, "media", timeout=30_000, fail_fast=False)


@pytest.fixture
def settle_media(app_and_engine) -> Callable[[], Awaitable[None]]:
    """Wait until the media work queued so far is done (before comparing snapshots of
    the database, say)."""
    app, _ = app_and_engine

    async def settle() -> None:
        broker = app.state.queue.broker
        if isinstance(broker, StubBroker) and "media" in broker.queues:
            await asyncio.to_thread(broker.join, "media", timeout=120_000, fail_fast=False)

    return settle


async def _empty_tables(engine: AsyncEngine) -> None:
    tables = list(reversed(Base.metadata.sorted_tables))
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(f'"{table.name}"' for table in tables)
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await connection.execute(table.delete())


@pytest.fixture
def session_factory(app_and_engine, engine) -> async_sessionmaker[AsyncSession]:
    app, _ = app_and_engine
    return app.state.session_factory


@pytest.fixture
async def client(app_and_engine, engine) -> AsyncIterator[httpx.AsyncClient]:
    app, _ = app_and_engine
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://backline.test") as client:
        yield client


@pytest.fixture
def dialect(database_url: str) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the real Redis; its keys are removed afterwards."""
    async with services.redis_key_prefix() as prefix:
        yield prefix
