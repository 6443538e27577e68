"""Alembic environment. The database URL comes from Backline's settings, or a caller
(the app's `migrate`, the tests) hands over an open connection."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection

import backend.models  # noqa: F401  (registers every table on the metadata)
from backend.core.database import Base, UTCDateTime, create_engine
from backend.core.settings import get_settings

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Migrations must not import app code: write UTCDateTime as the column it is."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(url: str) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
        return
    url = config.attributes.get("url") or get_settings().resolved_database_url
    asyncio.run(run_async_migrations(url))


if context.is_offline_mode():
    raise SystemExit("Offline (SQL script) migrations are not supported; run `backline migrate`.")
run_migrations_online()
