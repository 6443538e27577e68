"""Rate limits: a budget of points per caller (API token, else user, else address) per
window, in this process or in Redis. Just under the budget a request runs and says what
is left (``extensions.rateLimit``); just over it, it is refused with RATE_LIMITED, a
retry time and HTTP 429 + Retry-After, and nothing of it runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from backend.bands.models import Band
from backend.graphql.limits.rate import MemoryStore, RedisStore, caller_key
from tests import services
from tests.graphql.test_limits import app_client, post
from tests.graphql_client import register
from tests.live_server import connect, serve, subscribe

STORES = ["memory", "redis"]


@pytest.fixture(params=STORES)
async def store_settings(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """Settings for the counts' store: in-process, or Redis under a prefix of its own
    (removed afterwards)."""
    if request.param == "memory":
        yield {}
        return
    async with services.redis_key_prefix() as prefix:
        yield {"redis_url": services.REDIS_URL, "redis_prefix": prefix}


def limited(database_url: str, tmp_path: Path, store: dict[str, Any], **overrides: Any):
    settings = {"rate_limit_points": 5, "rate_limit_anonymous_points": 3, **store, **overrides}
    return app_client(database_url, tmp_path, **settings)


CHEAP = "{ __typename }"


async def test_anonymous_budget_just_under_and_over(database_url, engine, tmp_path, store_settings):
    async with limited(database_url, tmp_path, store_settings) as http:
        for remaining in (2, 1, 0):
            response, body = await post(http, CHEAP)
            assert response.status_code == 200 and body["data"] == {"__typename": "Query"}
            report = body["extensions"]["rateLimit"]
            assert report["limit"] == 3 and report["cost"] == 1
            assert report["remaining"] == remaining
            assert report["resetAt"].endswith("Z")
            assert response.headers["x-ratelimit-remaining"] == str(remaining)
        response, body = await post(http, CHEAP)
        assert response.status_code == 429
        assert body.get("data") is None
        [error] = body["errors"]
        extensions = error["extensions"]
        assert extensions["code"] == "RATE_LIMITED"
        assert 3590 <= extensions["retryAfter"] <= 3600
        assert response.headers["retry-after"] == str(extensions["retryAfter"])
        assert extensions["remaining"] == 0 and extensions["limit"] == 3
        assert body["extensions"]["rateLimit"]["remaining"] == 0


async def test_a_refused_request_runs_nothing(
    database_url, engine, session_factory, tmp_path, store_settings
):
    async with limited(database_url, tmp_path, store_settings) as http:
        token, _ = await register(http, f"spender{uuid.uuid4().hex[:6]}")
        create = "mutation($n: String!) { createBand(input: {name: $n}) { id } }"
        for index in range(5):  # the user's own budget: 5 points
            _, body = await post(http, create, {"n": f"Band {index}"}, token=token)
            assert not body.get("errors"), body
            assert body["extensions"]["rateLimit"]["remaining"] == 4 - index
        response, body = await post(http, create, {"n": "One too many"}, token=token)
        assert (
            response.status_code == 429
            and body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        )
    async with session_factory() as session:
        names = (await session.scalars(select(Band.name))).all()
    assert sorted(names) == [f"Band {index}" for index in range(5)]


async def test_costly_requests_cost_more_points(database_url, engine, tmp_path, store_settings):
    async with limited(database_url, tmp_path, store_settings, rate_limit_points=100) as http:
        token, _ = await register(http, f"reader{uuid.uuid4().hex[:6]}")
        # viewer 1 + connection 1 + 100 bands x (1 + connection 1 + 20 tracks): 2202, 23 points.
        query = "{ viewer { bands(first: 100) { nodes { tracks { nodes { id } } } } } }"
        for remaining in (77, 54, 31, 8):
            _, body = await post(http, query, token=token)
            assert not body.get("errors"), body
            assert body["extensions"]["rateLimit"] == {
                **body["extensions"]["rateLimit"],
                "cost": 23,
                "remaining": remaining,
            }
        # 8 left: this one does not fit and is refused without being charged...
        response, body = await post(http, query, token=token)
        assert response.status_code == 429
        assert body["errors"][0]["extensions"]["cost"] == 23
        # ... so a cheap one still fits.
        _, body = await post(http, "{ viewer { handle } }", token=token)
        assert not body.get("errors") and body["extensions"]["rateLimit"]["remaining"] == 7


async def test_refused_documents_cost_one_point(database_url, engine, tmp_path, store_settings):
    async with limited(database_url, tmp_path, store_settings) as http:
        for query, code in (
            ("{ nope", "GRAPHQL_PARSE_FAILED"),
            ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
        ):
            _, body = await post(http, query)
            assert body["errors"][0]["extensions"]["code"] == code
            assert body["extensions"]["rateLimit"]["cost"] == 1
        assert (await post(http, CHEAP))[1]["extensions"]["rateLimit"]["remaining"] == 0


async def test_budgets_are_per_caller(database_url, engine, tmp_path, store_settings):
    async with (
        limited(database_url, tmp_path, store_settings, client=("10.0.0.1", 1)) as first,
        limited(database_url, tmp_path, store_settings, client=("10.0.0.2", 1)) as second,
    ):
        # Two apps on one Redis share the counts (one process each here; the in-memory
        # store is per process), so they ask as different addresses.
        for _ in range(3):
            assert not (await post(first, CHEAP))[1].get("errors")
        assert (await post(first, CHEAP))[0].status_code == 429
        assert (await post(second, CHEAP))[1]["extensions"]["rateLimit"]["remaining"] == 2
        # A signed-in user has a budget of their own, whatever the address's.
        token, _ = await register(second, f"member{uuid.uuid4().hex[:6]}")
        _, body = await post(first, "{ viewer { handle } }", token=token)
        assert body["extensions"]["rateLimit"] == {
            **body["extensions"]["rateLimit"],
            "limit": 5,
            "remaining": 4,
        }
        # A bad token is refused before any document is read (backend/graphql/context.py).
        _, body = await post(first, CHEAP, token="not-a-token")
        assert (
            body.get("data") is None
            and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        )


async def test_an_api_token_has_a_budget_apart_from_its_user(
    database_url, engine, tmp_path, store_settings
):
    async with limited(database_url, tmp_path, store_settings) as http:
        token, _ = await register(http, f"integrator{uuid.uuid4().hex[:6]}")
        created = 'mutation { createApiToken(name: "ci") { token apiToken { id } } }'
        _, body = await post(http, created, token=token)
        api_token = body["data"]["createApiToken"]["token"]
        assert body["extensions"]["rateLimit"]["remaining"] == 4  # the user's
        for remaining in (4, 3):
            _, body = await post(http, "{ viewer { handle } }", token=api_token)
            assert body["extensions"]["rateLimit"]["remaining"] == remaining
        _, body = await post(http, "{ viewer { handle } }", token=token)
        assert body["extensions"]["rateLimit"]["remaining"] == 3  # the user's again
    if store_settings:  # the counts live under the deployment's prefix
        from redis.asyncio import Redis

        client = Redis.from_url(store_settings["redis_url"])
        try:
            keys = {
                key.decode()
                async for key in client.scan_iter(
                    match=f"{store_settings['redis_prefix']}:ratelimit:*"
                )
            }
        finally:
            await client.aclose()
        assert {key.split(":ratelimit:")[1].split(":")[0] for key in keys} == {
            "ip",
            "user",
            "token",
        }


async def test_the_budget_refills_when_the_window_ends(
    database_url, engine, tmp_path, store_settings
):
    async with limited(database_url, tmp_path, store_settings, rate_limit_window_seconds=1) as http:
        for _ in range(3):
            await post(http, CHEAP)
        response, body = await post(http, CHEAP)
        assert response.status_code == 429 and body["errors"][0]["extensions"]["retryAfter"] == 1
        await asyncio.sleep(1.1)
        response, body = await post(http, CHEAP)
        assert response.status_code == 200 and body["extensions"]["rateLimit"]["remaining"] == 2


async def test_a_subscription_is_charged_once(database_url, engine, tmp_path, store_settings):
    async with limited(database_url, tmp_path, store_settings, rate_limit_points=10) as http:
        token, _ = await register(http, f"listener{uuid.uuid4().hex[:6]}")
        band = (
            await post(http, 'mutation { createBand(input: {name: "Live"}) { id } }', token=token)
        )[1]
        band_id = band["data"]["createBand"]["id"]  # 9 left
        comments = "subscription($id: ID!) { bandEvents(bandId: $id) { __typename } }"
        async with serve(http.app) as url:  # type: ignore[attr-defined]
            socket = await connect(url, token)
            try:
                await subscribe(socket, "1", comments, {"id": band_id})
                await subscribe(socket, "2", comments, {"id": band_id})
                await asyncio.sleep(0.3)
                # Two subscriptions, one point each, however many events they will carry.
                _, body = await post(http, "{ viewer { handle } }", token=token)
                assert body["extensions"]["rateLimit"]["remaining"] == 9 - 2 - 1
            finally:
                await socket.close()


async def test_memory_store_charges_only_what_fits():
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0], max_keys=2)
    assert (await store.charge("a", 3, 5, 60)).remaining == 2
    refused = await store.charge("a", 3, 5, 60)
    assert not refused.allowed and refused.remaining == 2 and refused.reset_at == 1060
    assert (await store.charge("a", 2, 5, 60)).allowed
    now[0] = 1060
    assert (await store.charge("a", 5, 5, 60)).allowed  # a new window
    await store.charge("b", 1, 5, 60)
    await store.charge("c", 1, 5, 60)  # past max_keys: the oldest ("a") is forgotten
    assert (await store.charge("a", 5, 5, 60)).allowed


async def test_redis_store_is_atomic_across_concurrent_charges():
    try:
        await services.redis_available()
    except Exception as error:  # connection refused, timeout, ...
        services.missing("Redis on 127.0.0.1:6379", error)
    store = RedisStore(services.REDIS_URL, prefix=f"backline-test-{uuid.uuid4().hex[:8]}")
    try:
        charges = await asyncio.gather(*(store.charge("racer", 1, 10, 60) for _ in range(50)))
        assert sum(charge.allowed for charge in charges) == 10
        assert max(charge.used for charge in charges) == 10
    finally:
        await store._redis.delete(store.prefix + "racer")
        await store.aclose()


def test_caller_keys():
    class Caller:
        def __init__(self, user_id: int, api_token_id: int | None = None) -> None:
            self.user_id, self.api_token_id = user_id, api_token_id

    class Ctx:
        def __init__(self, caller: Any, client_ip: str | None) -> None:
            self.caller, self.client_ip = caller, client_ip

    assert caller_key(Ctx(Caller(7, 3), "10.0.0.1")) == ("token:3", True)
    assert caller_key(Ctx(Caller(7), "10.0.0.1")) == ("user:7", True)
    assert caller_key(Ctx(None, "10.0.0.1")) == ("ip:10.0.0.1", False)
    assert caller_key(Ctx(None, "::ffff:10.0.0.1")) == ("ip:10.0.0.1", False)
    # One host gets a /64: its addresses share a budget.
    assert caller_key(Ctx(None, "2001:db8:1:2::5")) == caller_key(Ctx(None, "2001:db8:1:2:ffff::9"))
    assert caller_key(Ctx(None, "2001:db8:1:2::5")) == ("ip:2001:db8:1:2::/64", False)
    assert caller_key(Ctx(None, None)) == ("ip:unknown", False)
