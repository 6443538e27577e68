"""The real PostgreSQL and Redis the tests use, and what to do when one is missing:
in CI (CI=true) that is a failure; on a laptop those tests skip, saying why."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# A server to create throw-away databases on (trust auth on this machine).
POSTGRES_ADMIN_DSN = os.environ.get(
    "BACKLINE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("BACKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def missing(service: str, error: BaseException) -> None:
    message = f"{service} is not reachable ({type(error).__name__}: {error})"
    if IN_CI:
        pytest.fail(f"{message}; CI requires it.", pytrace=False)
    pytest.skip(f"{message}; start it to run these tests.")


async def create_postgres_database() -> tuple[str, str]:
    """A fresh database: (SQLAlchemy URL, name)."""
    name = f"backline_test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}", name


async def drop_postgres_database(name: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def redis_available() -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await asyncio.wait_for(client.ping(), 3)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def redis_key_prefix() -> AsyncIterator[str]:
    """A key prefix of the caller's own on the real Redis (skipped, or failed in CI, when
    it does not answer); every key under it is removed afterwards."""
    try:
        await redis_available()
    except Exception as error:  # connection refused, timeout, ...
        missing("Redis on 127.0.0.1:6379", error)
    from redis.asyncio import Redis

    prefix = f"backline-test-{uuid.uuid4().hex[:8]}"
    try:
        yield prefix
    finally:
        client = Redis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
