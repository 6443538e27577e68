"""Personal API tokens: shown once, stored hashed, listed, revoked, scoped, and usable as
a bearer token over HTTP and in a websocket's connection_init."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from backend.accounts.models import ApiToken, RefreshToken
from backend.bands.models import Band
from tests.graphql_client import gql, register
from tests.live_server import TRANSPORT_WS, close_code, connect, next_message, receive, serve
from tests.live_server import subscribe as ws_subscribe

CREATE = """
mutation Create($name: String!, $scopes: [String!], $persistedOnly: Boolean, $expiresAt: DateTime) {
  createApiToken(name: $name, scopes: $scopes, persistedOnly: $persistedOnly, expiresAt: $expiresAt) {
    token apiToken { id name scopes persistedOnly lastUsedAt expiresAt createdAt }
  }
}
"""
REVOKE = "mutation Revoke($id: ID!) { revokeApiToken(id: $id) }"
TOKENS = "{ viewer { handle apiTokens { id name scopes lastUsedAt } } }"
LOGIN = """mutation { login(input: {email: "alice@example.org", password: "correct horse"}) {
  refreshToken } }"""
REFRESH = "mutation R($t: String!) { refreshToken(refreshToken: $t) { accessToken } }"
CREATE_BAND = 'mutation { createBand(input: {name: "Token Band"}) { id } }'
ADD_SOURCE = """mutation($b: ID!, $r: String!) {
  addSource(input: {bandId: $b, kind: LOCAL_FOLDER, name: "x", root: $r}) { id } }"""
SCAN = "mutation($s: ID!) { scanSource(sourceId: $s) { id } }"


async def create_token(client, token: str, name: str = "Discord bot", **variables) -> dict:
    result = await gql(client, CREATE, {"name": name, **variables}, token=token)
    return result.ok()["createApiToken"]


async def test_the_secret_is_shown_once_stored_hashed_and_works_as_a_bearer_token(
    client, session_factory
):
    login, _ = await register(client, "alice")
    created = await create_token(client, login)
    secret = created["token"]
    assert secret.startswith("blt_") and len(secret) > 40
    assert created["apiToken"]["scopes"] == ["read", "write"]
    assert created["apiToken"]["lastUsedAt"] is None

    async with session_factory() as db:
        stored = (await db.scalars(select(ApiToken))).one()
    assert stored.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {stored.token_hash, stored.name}

    viewer = (await gql(client, TOKENS, token=secret)).ok()["viewer"]
    assert viewer["handle"] == "alice"
    # Listed without the secret, and now marked as used.
    [listed] = viewer["apiTokens"]
    assert listed["id"] == created["apiToken"]["id"] and listed["name"] == "Discord bot"
    assert listed["lastUsedAt"] is not None
    assert "token" not in listed
    # A token writes as its user does.
    assert (await gql(client, CREATE_BAND, token=secret)).ok()["createBand"]["id"]


async def test_a_revoked_token_stops_working_at_once_and_only_its_owner_can_revoke_it(client):
    alice, _ = await register(client, "alice")
    bob, _ = await register(client, "bob")
    created = await create_token(client, alice)
    token_id = created["apiToken"]["id"]

    assert (await gql(client, REVOKE, {"id": token_id}, token=bob)).codes == ["NOT_FOUND"]
    assert (await gql(client, "{ viewer { handle } }", token=created["token"])).ok()

    assert (await gql(client, REVOKE, {"id": token_id}, token=alice)).ok()["revokeApiToken"]
    refused = await gql(client, "{ viewer { handle } }", token=created["token"])
    assert refused.codes == ["UNAUTHENTICATED"]
    assert "revoked" in refused.errors[0]["message"]
    assert (await gql(client, TOKENS, token=alice)).ok()["viewer"]["apiTokens"] == []
    again = await gql(client, REVOKE, {"id": token_id}, token=alice)
    assert again.codes == ["NOT_FOUND"]
    # Not a token's id at all.
    band = (await gql(client, CREATE_BAND, token=alice)).ok()["createBand"]["id"]
    assert (await gql(client, REVOKE, {"id": band}, token=alice)).codes == ["NOT_FOUND"]


async def test_a_token_is_a_node_its_owner_alone_can_fetch(client):
    alice, _ = await register(client, "alice")
    bob, _ = await register(client, "bob")
    token_id = (await create_token(client, alice))["apiToken"]["id"]
    node = "query N($id: ID!) { node(id: $id) { id ... on ApiToken { name } } }"
    found = (await gql(client, node, {"id": token_id}, token=alice)).ok()["node"]
    assert found == {"id": token_id, "name": "Discord bot"}
    assert (await gql(client, node, {"id": token_id}, token=bob)).codes == ["NOT_FOUND"]


async def test_a_read_only_token_reads_and_is_refused_every_change(client, session_factory):
    alice, _ = await register(client, "alice")
    reader = (await create_token(client, alice, scopes=["read"]))["token"]
    assert (await gql(client, "{ viewer { handle } }", token=reader)).ok()
    refused = await gql(client, CREATE_BAND, token=reader)
    assert refused.codes == ["FORBIDDEN"] and "write" in refused.errors[0]["message"]
    assert refused.data is None
    async with session_factory() as db:
        assert await db.scalar(select(func.count()).select_from(ApiToken)) == 1
        assert await db.scalar(select(func.count()).select_from(Band)) == 0


async def test_tokens_cannot_mint_tokens_or_sign_their_user_out(client):
    alice, _ = await register(client, "alice")
    secret = (await create_token(client, alice))["token"]
    assert (await gql(client, CREATE, {"name": "copy"}, token=secret)).codes == ["FORBIDDEN"]
    everywhere = await gql(client, "mutation { logoutEverywhere }", token=secret)
    assert everywhere.codes == ["FORBIDDEN"]


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "scopes": ["admin"]}, "scopes"),
        ({"name": "ok", "scopes": []}, "scopes"),
        ({"name": "ok", "expiresAt": "2020-01-01T00:00:00Z"}, "expiresAt"),
    ],
)
async def test_bad_token_requests_are_refused_and_write_nothing(
    client, session_factory, variables, field
):
    alice, _ = await register(client, "alice")
    result = await gql(client, CREATE, variables, token=alice)
    assert result.codes == ["BAD_USER_INPUT"], result.errors
    assert result.errors[0]["extensions"]["field"] == field
    async with session_factory() as db:
        assert await db.scalar(select(func.count()).select_from(ApiToken)) == 0


async def test_write_implies_read_and_an_expired_token_is_refused(client, session_factory):
    alice, _ = await register(client, "alice")
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = await create_token(client, alice, scopes=["write"], expiresAt=soon)
    assert created["apiToken"]["scopes"] == ["read", "write"]
    assert created["apiToken"]["expiresAt"] is not None
    async with session_factory() as db:
        await db.execute(update(ApiToken).values(expires_at=datetime.now(UTC) - timedelta(1)))
        await db.commit()
    result = await gql(client, "{ viewer { handle } }", token=created["token"])
    assert result.codes == ["UNAUTHENTICATED"]


async def test_logout_everywhere_ends_every_login_but_not_the_integrations(client, session_factory):
    alice, _ = await register(client, "alice")
    phone = (await gql(client, LOGIN)).ok()["login"]["refreshToken"]
    laptop = (await gql(client, LOGIN)).ok()["login"]["refreshToken"]
    secret = (await create_token(client, alice))["token"]
    assert (await gql(client, "mutation { logoutEverywhere }", token=alice)).ok()
    for refresh in (phone, laptop):
        assert (await gql(client, REFRESH, {"t": refresh})).codes == ["UNAUTHENTICATED"]
    async with session_factory() as db:
        alive = select(func.count()).select_from(RefreshToken)
        assert await db.scalar(alive.where(RefreshToken.revoked_at.is_(None))) == 0
    assert (await gql(client, "{ viewer { handle } }", token=secret)).ok()


@pytest.fixture
async def server_url(app_and_engine, engine) -> AsyncIterator[str]:
    app, _ = app_and_engine
    async with serve(app) as url:
        yield url


async def test_a_token_authenticates_a_websocket_and_a_revoked_one_is_refused(
    client, server_url, tmp_path
):
    alice, _ = await register(client, "alice")
    created = await create_token(client, alice)
    band_id = (await gql(client, CREATE_BAND, token=alice)).ok()["createBand"]["id"]

    socket_ = await connect(server_url, created["token"], TRANSPORT_WS)
    assert (await receive(socket_))["type"] == "connection_ack"
    query = "subscription S($b: ID!) { bandEvents(bandId: $b) { __typename } }"
    await ws_subscribe(socket_, "1", query, {"b": band_id})
    await asyncio.sleep(0.2)  # subscribed before the scan's first event
    # The token's user is a member: the band's events reach the socket.
    source = await gql(client, ADD_SOURCE, {"b": band_id, "r": str(tmp_path)}, token=alice)
    source_id = source.ok()["addSource"]["id"]
    await gql(client, SCAN, {"s": source_id}, token=created["token"])
    message = await next_message(socket_)
    assert message["type"] == "next", message
    assert message["payload"]["data"]["bandEvents"]["__typename"] == "JobUpdated"
    await socket_.close()

    await gql(client, REVOKE, {"id": created["apiToken"]["id"]}, token=alice)
    assert await close_code(await connect(server_url, created["token"], TRANSPORT_WS)) == 4403
