"""The app as a whole: health and readiness, start-up checks, HTTP transport, masking."""

from __future__ import annotations

import uuid

import httpx
import pytest

from backend.app import DatabaseNotMigrated, create_app
from backend.core.settings import Settings
from tests import services
from tests.graphql_client import gql, register


async def test_healthz_and_readyz(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


def _settings(tmp_path, **overrides) -> Settings:
    # The session's app runs the embedded workers; one set per process.
    return Settings(
        data_dir=tmp_path,
        secret_key="x" * 40,
        require_migrated_database=False,
        worker_threads=0,
        **overrides,
    )


async def _get(app, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        return await client.get(path)


async def test_readyz_checks_redis_when_configured(tmp_path):
    try:
        await services.redis_available()
    except Exception as error:  # connection refused, timeout, ...
        services.missing("Redis on 127.0.0.1:6379", error)
    ready = await _get(create_app(_settings(tmp_path, redis_url=services.REDIS_URL)), "/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_readyz_is_503_when_redis_is_down(tmp_path):
    # Port 9 (discard) has no Redis: connection refused at once.
    app = create_app(_settings(tmp_path, redis_url="redis://127.0.0.1:9/0"))
    ready = await _get(app, "/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith("unavailable")


async def test_refuses_to_start_on_an_unmigrated_database(tmp_path):
    settings = Settings(data_dir=tmp_path, secret_key="x" * 40, worker_threads=0)
    app = create_app(settings)
    with pytest.raises(DatabaseNotMigrated, match="backline migrate"):
        async with app.router.lifespan_context(app):
            pass


async def test_queries_over_get_and_graphiql(client):
    token, _ = await register(client, "getter")
    response = await client.get(
        "/graphql",
        params={"query": "{ viewer { handle } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"viewer": {"handle": "getter"}}
    mutation = await client.get(
        "/graphql", params={"query": 'mutation { logout(refreshToken: "x") }'}
    )
    # Refused before execution, as GraphQL over HTTP says: 405, POST allowed.
    assert mutation.status_code == 405 and mutation.headers["allow"] == "POST"
    assert mutation.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


async def test_unexpected_errors_are_masked_with_a_request_id(client, monkeypatch, caplog):
    from backend.bands import service as bands_service

    async def broken(**_kwargs):
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(bands_service, "create", broken)
    token, _ = await register(client, "victim")
    result = await gql(client, 'mutation { createBand(input: {name: "X"}) { id } }', token=token)
    assert result.codes == ["INTERNAL_SERVER_ERROR"]
    error = result.errors[0]
    assert "hunter2" not in error["message"]
    request_id = error["extensions"]["requestId"]
    assert request_id in error["message"]
    # The log keeps what the client does not see, under the same request id.
    assert any(request_id in record.getMessage() for record in caplog.records)
    # One broken request leaves the next one unharmed.
    assert (await gql(client, "{ viewer { handle } }", token=token)).ok()


def test_broker_follows_settings(tmp_path):
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.brokers.stub import StubBroker

    from workers.broker import create_broker

    assert isinstance(create_broker(_settings(tmp_path)), StubBroker)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    broker = create_broker(_settings(tmp_path, redis_url=services.REDIS_URL, redis_prefix=prefix))
    assert isinstance(broker, RedisBroker)
    broker.close()
