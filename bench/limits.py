"""What the abuse limits (backend/graphql/limits) cost a request.

Two parts: the limits' own steps timed alone (measuring a document, charging a budget in
memory and in Redis), and whole in-process requests (ASGI, no network) to an app with the
limits and to the same app built without them.

    .venv/bin/python bench/limits.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from graphql import parse
from strawberry.schema.schema import validate_document

import backend.app as app_module
from backend.core.database import create_engine
from backend.core.migrations import upgrade_to_head
from backend.core.settings import Settings
from backend.graphql import schema as schema_module
from backend.graphql.limits import Limits
from backend.graphql.limits.rate import MemoryStore, RedisStore
from tests.trusted_documents import BAND_PAGE

REDIS_URL = "redis://127.0.0.1:6379/0"
SMALL = "{ viewer { handle bands(first: 10) { nodes { name } } } }"


def per_call_us(function: Callable[[], Any], repeats: int = 5, number: int = 2000) -> float:
    """Best of ``repeats`` runs of ``number`` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number):
            function()
        best = min(best, (time.perf_counter() - started) / number)
    return best * 1e6


async def per_await_us(function: Callable[[], Awaitable[Any]], number: int = 2000) -> float:
    started = time.perf_counter()
    for _ in range(number):
        await function()
    return (time.perf_counter() - started) / number * 1e6


async def steps() -> None:
    settings = Settings(secret_key="x" * 40)
    limits = Limits(settings, store=MemoryStore())
    graphql_schema = schema_module.schema._schema
    print("limits' own steps (best of 5 x 2,000 calls)")
    for label, text in (("small query", SMALL), ("band page (9 deep, 4,330)", BAND_PAGE)):
        document = parse(text)
        check = per_call_us(
            lambda d=document: limits.check(graphql_schema, d, None, {"id": "x"}, trusted=True)
        )
        validate = per_call_us(
            lambda d=document: validate_document(graphql_schema, d, ()), number=200
        )
        print(f"  measure + check, {label:<27} {check:8.1f} us", end="")
        print(f"   (validation alone: {validate:7.1f} us)")
    memory = MemoryStore()
    figure = await per_await_us(lambda: memory.charge("user:1", 1, 10**9, 3600))
    print(f"  charge, in-process store           {figure:8.1f} us")
    redis = RedisStore(REDIS_URL, prefix=f"backline-bench-{uuid.uuid4().hex[:8]}")
    try:
        await redis.charge("user:1", 1, 10**9, 3600)
        figure = await per_await_us(lambda: redis.charge("user:1", 1, 10**9, 3600))
        print(f"  charge, Redis (Lua, loopback)      {figure:8.1f} us")
        await redis._redis.delete(redis.prefix + "user:1")
    except Exception as error:  # no Redis here: say so, measure the rest
        print(f"  charge, Redis: not measured ({type(error).__name__})")
    finally:
        await redis.aclose()


async def requests(count: int, redis: bool) -> None:
    data = Path(tempfile.mkdtemp(prefix="bench-limits-"))
    url = f"sqlite+aiosqlite:///{data / 'backline.db'}"
    engine = create_engine(url)
    await upgrade_to_head(engine)
    await engine.dispose()
    extra: dict[str, Any] = {}
    if redis:
        extra = {"redis_url": REDIS_URL, "redis_prefix": f"backline-bench-{uuid.uuid4().hex[:8]}"}
    settings = Settings(
        database_url=url,
        data_dir=data,
        secret_key="x" * 40,
        worker_threads=0,
        watch_sources=False,
        rate_limit_anonymous_points=10**9,
        **extra,
    )
    original = app_module.create_schema
    figures: dict[str, list[float]] = {}
    for label, factory in (
        ("without limits", lambda _settings: original()),
        ("with limits", original),
    ):
        app_module.create_schema = factory  # type: ignore[assignment]
        try:
            app = app_module.create_app(settings)
        finally:
            app_module.create_schema = original
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
        ):
            body = {"query": "{ __typename }"}
            for _ in range(100):
                await client.post("/graphql", json=body)
            times = []
            for _ in range(count):
                started = time.perf_counter()
                response = await client.post("/graphql", json=body)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
            figures[label] = times
    store = "Redis" if redis else "in-process"
    print(f"whole requests, in-process ASGI, {{ __typename }}, {count:,} sequential", end="")
    print(f" ({store} budget store)")
    for label, times in figures.items():
        times.sort()
        print(
            f"  {label:<15} p50 {statistics.median(times):6.3f} ms   "
            f"p95 {times[int(len(times) * 0.95)]:6.3f} ms   mean {statistics.fmean(times):6.3f} ms"
        )
    overhead = statistics.median(figures["with limits"]) - statistics.median(
        figures["without limits"]
    )
    print(f"  overhead (p50)  {overhead:+6.3f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    await steps()
    await requests(args.requests, redis=False)
    await requests(args.requests, redis=True)


if __name__ == "__main__":
    asyncio.run(main())
