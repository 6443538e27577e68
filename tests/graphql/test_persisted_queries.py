"""Automatic persisted queries (Apollo's protocol, as Apollo Client's persisted query link
and urql's persistedExchange speak it) and GraphQL-over-HTTP persisted documents
(``documentId``), over POST and GET, against the real app on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from backend.graphql.persisted.models import PersistedQuery
from tests.graphql_client import register

ME = "query Me { viewer { handle } }"
ANONYMOUS = "query Anonymous { __typename }"
CREATE_BAND = 'mutation { createBand(input: {name: "Cached"}) { id } }'
NOT_FOUND = {
    "errors": [
        {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
    ]
}


@pytest.fixture(autouse=True)
def forget_remembered_documents(app_and_engine) -> None:
    """The app lives for the session, its tables are emptied per test: so is its LRU."""
    app, _ = app_and_engine
    app.state.persisted.store.clear()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(text: str, **extra: Any) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(text), **extra}}


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def post(client: httpx.AsyncClient, body: dict[str, Any], token: str | None = None):
    return await client.post("/graphql", json=body, headers=bearer(token))


async def get(
    client: httpx.AsyncClient, params: dict[str, Any], token: str | None = None
) -> httpx.Response:
    encoded = {
        key: json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else value
        for key, value in params.items()
    }
    # Accept as browsers' fetch sends it: must not be mistaken for a GraphiQL visit.
    headers = {"Accept": "*/*", **bearer(token)}
    return await client.get("/graphql", params=encoded, headers=headers)


def data_of(response: httpx.Response | dict[str, Any]) -> Any:
    """The data of an answer without errors (other extensions, such as rate limits, aside)."""
    body = response if isinstance(response, dict) else response.json()
    assert not body.get("errors"), body
    return body["data"]


def code_of(response: httpx.Response) -> str:
    return response.json()["errors"][0]["extensions"]["code"]


async def test_apq_unknown_hash_then_register_then_hit_by_hash(client, session_factory):
    token, _ = await register(client, "apq")

    # Hash only, never seen: exactly what both clients look for, with HTTP 200.
    miss = await post(client, {"extensions": apq(ME), "operationName": "Me"}, token)
    assert miss.status_code == 200
    assert miss.json() == NOT_FOUND

    # urql's retry carries "miss": true beside the hash; the server ignores it.
    registered = await post(
        client, {"query": ME, "extensions": apq(ME, miss=True), "operationName": "Me"}, token
    )
    assert data_of(registered) == {"viewer": {"handle": "apq"}}
    async with session_factory() as session:
        row = await session.get(PersistedQuery, sha256(ME))
        assert row is not None and row.document == ME

    hit = await post(client, {"extensions": apq(ME), "operationName": "Me"}, token)
    assert data_of(hit) == {"viewer": {"handle": "apq"}}


async def test_a_query_that_does_not_match_its_hash_is_refused_and_not_kept(
    client, session_factory
):
    other = "query Other { __typename }"
    response = await post(client, {"query": ME, "extensions": apq(other)})
    assert response.status_code == 200
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
    assert sha256(ME) in error["message"] and sha256(other) in error["message"]
    assert "data" not in response.json()
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(PersistedQuery)) == 0


async def test_malformed_persisted_query_extensions_are_bad_requests(client):
    cases = {
        "UNSUPPORTED_VERSION": {"persistedQuery": {"version": 2, "sha256Hash": sha256(ME)}},
        "MALFORMED_HASH": {"persistedQuery": {"version": 1, "sha256Hash": "abc"}},
        "MALFORMED_PERSISTED_QUERY": {"persistedQuery": "yes"},
    }
    for reason, extensions in cases.items():
        response = await post(client, {"query": ME, "extensions": extensions})
        assert response.status_code == 200
        (error,) = response.json()["errors"]
        assert error["extensions"] == {"code": "BAD_REQUEST", "reason": reason}, error
    version = await post(client, {"extensions": cases["UNSUPPORTED_VERSION"]})
    assert "version 1" in version.json()["errors"][0]["message"]


async def test_get_by_hash_is_served_with_cache_headers(client):
    token, _ = await register(client, "getter")
    params = {"operationName": "Anonymous", "extensions": apq(ANONYMOUS)}

    # Not registered yet: the miss must not be cached, or the registration would be hidden.
    miss = await get(client, params)
    assert miss.status_code == 200 and miss.json() == NOT_FOUND
    assert miss.headers["cache-control"] == "no-store"

    # Apollo Client retries by POST with the document; urql may retry by GET: both register.
    await get(client, {"query": ANONYMOUS, **params})

    anonymous = await get(client, params)
    assert data_of(anonymous) == {"__typename": "Query"}
    assert anonymous.headers["cache-control"] == "public, max-age=60"
    assert anonymous.headers["vary"] == "Authorization"

    signed_in = await get(client, {"operationName": "Me", "extensions": apq(ME)}, token)
    assert signed_in.json() == NOT_FOUND
    await post(client, {"query": ME, "extensions": apq(ME)}, token)
    signed_in = await get(client, {"operationName": "Me", "extensions": apq(ME)}, token)
    assert data_of(signed_in) == {"viewer": {"handle": "getter"}}
    assert signed_in.headers["cache-control"] == "private, max-age=0"
    assert signed_in.headers["vary"] == "Authorization"

    # POST answers carry no caching headers of ours.
    posted = await post(client, {"query": ANONYMOUS})
    assert "cache-control" not in posted.headers


async def test_mutations_over_get_are_405(client, session_factory):
    token, _ = await register(client, "mutator")
    plain = await get(client, {"query": CREATE_BAND}, token)
    assert plain.status_code == 405
    assert plain.headers["allow"] == "POST"
    assert code_of(plain) == "METHOD_NOT_ALLOWED"

    # The same by hash and by documentId, once the document is known.
    await post(client, {"query": CREATE_BAND, "extensions": apq(CREATE_BAND)}, token)
    by_hash = await get(client, {"extensions": apq(CREATE_BAND)}, token)
    assert by_hash.status_code == 405 and code_of(by_hash) == "METHOD_NOT_ALLOWED"
    by_id = await get(client, {"documentId": f"sha256:{sha256(CREATE_BAND)}"}, token)
    assert by_id.status_code == 405 and by_id.headers["cache-control"] == "no-store"

    from backend.bands.models import Band

    async with session_factory() as session:  # only the POST created one
        assert await session.scalar(select(func.count()).select_from(Band)) == 1


async def test_document_id_over_post_and_get(client):
    token, _ = await register(client, "docid")
    document_id = f"sha256:{sha256(ME)}"

    unknown = await post(client, {"documentId": document_id}, token)
    assert unknown.json() == NOT_FOUND
    assert (await get(client, {"documentId": document_id}, token)).json() == NOT_FOUND

    await post(client, {"query": ME, "extensions": apq(ME)}, token)  # now it is known
    posted = await post(client, {"documentId": document_id, "operationName": "Me"}, token)
    assert data_of(posted) == {"viewer": {"handle": "docid"}}
    got = await get(client, {"documentId": document_id, "variables": {}}, token)
    assert data_of(got) == {"viewer": {"handle": "docid"}}
    assert got.headers["cache-control"] == "private, max-age=0"


async def test_malformed_document_ids_are_bad_requests(client):
    for document_id in (
        sha256(ME),  # no prefix
        f"sha256:{sha256(ME).upper()}",  # the spec says lower case
        "sha256:1234",
        "md5:0123456789abcdef0123456789abcdef",
        "",
        42,
    ):
        response = await post(client, {"documentId": document_id})
        assert response.status_code == 200
        assert response.json()["errors"][0]["extensions"] == {
            "code": "BAD_REQUEST",
            "reason": "MALFORMED_DOCUMENT_ID",
        }, document_id
    bad_get = await get(client, {"documentId": "sha256:nope"})
    assert code_of(bad_get) == "BAD_REQUEST"

    both = await post(client, {"documentId": f"sha256:{sha256(ME)}", "query": ME})
    assert both.json()["errors"][0]["extensions"]["reason"] == "AMBIGUOUS_DOCUMENT"


async def test_graphiql_still_opens_for_a_browser(client):
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
