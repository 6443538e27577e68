"""Requests that are not GraphQL requests, or not ones HTTP can run, get a GraphQL error
with a code and a message a person can act on, never bare text or a 500; nothing runs."""

from __future__ import annotations

import httpx
import pytest

from tests.graphql_client import register

JSON = {"Content-Type": "application/json"}
TWO_OPERATIONS = "query A { viewer { handle } } query B { __typename }"


def assert_refused(response: httpx.Response, status: int, code: str, says: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert "data" not in body  # nothing was executed
    [error] = body["errors"]
    assert error["extensions"]["code"] == code
    assert says in error["message"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"query": "{ __typename }"', "JSON"),  # cut short
        (b"\xff\xfe{}", "JSON"),  # not UTF-8
        (b'"just a string"', "JSON object"),
        (b'{"query": 42}', "query"),
        (b"{}", "query"),
        (b'{"query": "{ __typename }", "variables": [1]}', "variables"),
        (b'{"query": "{ __typename }", "extensions": "x"}', "extensions"),
        (b'[{"query": "{ __typename }"}]', "Batching"),
    ],
    ids=[
        "truncated",
        "not-utf8",
        "not-an-object",
        "query-not-string",
        "no-query",
        "variables-list",
        "extensions-string",
        "batch",
    ],
)
async def test_unreadable_json_bodies_are_bad_requests(client, content: bytes, says: str):
    response = await client.post("/graphql", content=content, headers=JSON)
    assert_refused(response, 400, "BAD_REQUEST", says)


async def test_a_body_of_another_content_type_is_a_bad_request(client):
    response = await client.post(
        "/graphql", content=b"{ __typename }", headers={"Content-Type": "text/plain"}
    )
    assert_refused(response, 400, "BAD_REQUEST", "content type")


async def test_get_with_bad_variables_or_no_query_is_a_bad_request(client):
    bad_variables = await client.get(
        "/graphql", params={"query": "{ __typename }", "variables": "[1"}
    )
    assert_refused(bad_variables, 400, "BAD_REQUEST", "JSON")
    no_query = await client.get(
        "/graphql", params={"variables": "{}"}, headers={"Accept": "application/json"}
    )
    assert_refused(no_query, 400, "BAD_REQUEST", "query")


async def test_operation_name_must_name_one_of_the_documents_operations(client):
    unknown = await client.post("/graphql", json={"query": TWO_OPERATIONS, "operationName": "C"})
    assert_refused(unknown, 400, "BAD_REQUEST", "no operation named 'C'")
    named = await client.post("/graphql", json={"query": TWO_OPERATIONS, "operationName": "B"})
    assert named.json()["data"] == {"__typename": "Query"}


async def test_a_subscription_over_http_is_sent_to_the_websocket(client):
    token, _ = await register(client, "subscriber")
    subscription = 'subscription { jobProgress(jobId: "Sm9iOjE=") { id } }'
    for response in (
        await client.post(
            "/graphql", json={"query": subscription}, headers={"Authorization": f"Bearer {token}"}
        ),
        await client.get("/graphql", params={"query": subscription}),
    ):
        assert_refused(response, 400, "BAD_REQUEST", "websocket")


async def test_a_document_of_fragments_only_is_a_bad_request(client):
    response = await client.post("/graphql", json={"query": "fragment F on Query { __typename }"})
    assert_refused(response, 400, "BAD_REQUEST", "no operation")


async def test_other_methods_are_refused_with_the_ones_allowed(client):
    for method in ("PUT", "PATCH", "DELETE"):
        response = await client.request(method, "/graphql", json={"query": "{ __typename }"})
        assert_refused(response, 405, "METHOD_NOT_ALLOWED", method)
        assert response.headers["allow"] == "GET, POST"
