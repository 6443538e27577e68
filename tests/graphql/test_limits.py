"""Document limits (depth, aliases, directives, tokens, cost), the request body limit,
production's closed schema (no introspection, no suggestions), request ids, and the
extensions being built per request. Each limit: a document just under it runs, one just
over it is refused before execution with QUERY_TOO_COMPLEX saying which limit and by how
much."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from graphql import parse
from strawberry.extensions import SchemaExtension

from backend.app import create_app
from backend.core.settings import Settings
from backend.graphql.limits import LimitsExtension
from backend.graphql.limits.cost import measure_operation
from backend.graphql.persisted.ids import sha256_hex
from backend.graphql.schema import create_schema, schema
from tests.graphql_client import register
from tests.live_server import connect, next_message, serve, subscribe

SECRET = "test-secret-key-that-is-long-enough-for-hs256"


@asynccontextmanager
async def app_client(
    database_url: str,
    data_dir: Path,
    *,
    client: tuple[str, int] = ("127.0.0.1", 123),
    **overrides: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """An app of its own (production mode, small budgets...) on the session's database."""
    settings = Settings(
        database_url=database_url,
        data_dir=data_dir,
        secret_key=SECRET,
        worker_threads=0,
        watch_sources=False,
        **overrides,
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        http.app = app  # type: ignore[attr-defined]
        yield http


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
) -> tuple[httpx.Response, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    return response, response.json()


def refusal(body: dict[str, Any]) -> dict[str, Any]:
    """The one QUERY_TOO_COMPLEX error of a refused body (nothing was executed)."""
    assert body.get("data") is None, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", error
    return error


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or []]


# viewer(1) bands(2) nodes(3) tracks(4) nodes(5) title(6)
DEPTH_6 = "{ viewer { bands(first: 1) { nodes { tracks(first: 1) { nodes { title } } } } } }"
# ... latestVersion(6) label(7)
DEPTH_7 = "{ viewer { bands(first: 1) { nodes { tracks(first: 1) { nodes { latestVersion { label } } } } } } }"


async def test_depth_just_under_and_over(client, caplog):
    token, _ = await register(client, "deep")
    response, body = await post(client, DEPTH_6, token=token)
    assert response.status_code == 200 and not body.get("errors"), body
    assert body["data"]["viewer"]["bands"]["nodes"] == []
    _, body = await post(client, DEPTH_7, token=token)
    error = refusal(body)
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "depth",
        "maximum": 6,
        "actual": 7,
    }
    assert "7 levels deep" in error["message"]
    # A refusal is the client's doing: not logged (a flood of them must not flood the log).
    assert not any("levels deep" in record.getMessage() for record in caplog.records)


async def test_depth_counts_fragments_as_written_out(client):
    token, _ = await register(client, "fragdeep")
    spread = (
        "query { viewer { bands(first: 1) { nodes { ...Tracks } } } }"
        " fragment Tracks on Band { tracks(first: 1) { nodes { latestVersion { label } } } }"
    )
    assert refusal((await post(client, spread, token=token))[1])["extensions"]["actual"] == 7
    inline = "{ viewer { ... on User { bands(first: 1) { nodes { tracks(first: 1) { nodes { title } } } } } } }"
    _, body = await post(client, inline, token=token)
    assert not body.get("errors"), body


def _deep_version_page() -> str:
    # A version page as the frontend asks for it: comments, their replies and authors.
    return (
        "query VersionPage($id: ID!) { node(id: $id) { ... on TrackVersion { label"
        " comments(first: 20) { nodes { body author { handle }"
        " replies(first: 10) { edges { node { body author { handle } } } } } } } } }"
    )


async def test_trusted_documents_may_nest_deeper(database_url, engine, tmp_path):
    page = _deep_version_page()
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_text(json.dumps({sha256_hex(page): page}))
    async with app_client(database_url, tmp_path, trusted_documents=str(manifest)) as http:
        token, _ = await register(http, "trusting")
        version_id = "VHJhY2tWZXJzaW9uOjE="  # TrackVersion:1: none, but it ran
        _, body = await post(http, page, {"id": version_id}, token=token)
        assert codes(body) == ["NOT_FOUND"], body
        # The same operation, not from the manifest (one space more): 8 deep is too deep.
        _, body = await post(http, page + " ", {"id": version_id}, token=token)
        assert refusal(body)["extensions"]["actual"] == 8
    # Past the trusted ceiling even a trusted document is refused.
    async with app_client(
        database_url, tmp_path, trusted_documents=str(manifest), max_trusted_query_depth=7
    ) as http:
        token, _ = await register(http, "trusting2")
        _, body = await post(http, page, {"id": "VHJhY2tWZXJzaW9uOjE="}, token=token)
        assert refusal(body)["extensions"] == {
            "code": "QUERY_TOO_COMPLEX",
            "limit": "depth",
            "maximum": 7,
            "actual": 8,
        }


def _aliases(count: int) -> str:
    return "{ viewer { " + " ".join(f"a{i}: handle" for i in range(count)) + " } }"


async def test_aliases_just_under_and_over(client):
    token, _ = await register(client, "alias")
    _, body = await post(client, _aliases(15), token=token)
    assert not body.get("errors") and body["data"]["viewer"]["a14"] == "alias"
    error = refusal((await post(client, _aliases(16), token=token))[1])
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "aliases",
        "maximum": 15,
        "actual": 16,
    }


async def test_aliases_in_fragments_count_each_time_they_are_spread(client):
    token, _ = await register(client, "aliasfrag")
    five = " ".join(f"a{i}: handle" for i in range(5))
    query = f"{{ viewer {{ ...F }} me: viewer {{ ...F }} x: viewer {{ ...F }} }} fragment F on User {{ {five} }}"
    # 3 spreads of 5 aliases, plus the 2 on the viewers: 17.
    assert refusal((await post(client, query, token=token))[1])["extensions"]["actual"] == 17


def _directives(count: int) -> str:
    return "{ viewer { " + " ".join("handle @include(if: true)" for _ in range(count)) + " } }"


async def test_directives_just_under_and_over(client):
    token, _ = await register(client, "directive")
    _, body = await post(client, _directives(50), token=token)
    assert not body.get("errors") and body["data"]["viewer"]["handle"] == "directive"
    error = refusal((await post(client, _directives(51), token=token))[1])
    assert error["extensions"]["limit"] == "directives"
    assert error["extensions"]["actual"] == 51 and error["extensions"]["maximum"] == 50


def _tokens(count: int) -> str:
    # `{ nodes ( ids : [` ... `] ) { id } }`: 12 tokens around the ids.
    ids = " ".join(f'"{i}"' for i in range(count - 12))
    return f"{{ nodes(ids: [{ids}]) {{ id }} }}"


async def test_tokens_just_under_and_over(client):
    token, _ = await register(client, "tokens")
    _, body = await post(client, _tokens(1000), token=token)
    # Parsed and run: more than 100 ids is the resolver's own BAD_USER_INPUT.
    assert codes(body) == ["BAD_USER_INPUT"], body
    _, body = await post(client, _tokens(1001), token=token)
    error = refusal(body)
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "limit": "tokens", "maximum": 1000}


def _cost_query(inner: str, variables: str = "") -> str:
    return f"query{variables} {{ viewer {{ bands(first: 100) {{ nodes {{ {inner} }} }} }} }}"


async def test_cost_just_under_and_over(client):
    token, _ = await register(client, "costly")
    # viewer 1 + band connection 1 + 100 bands x (1 + track connection 1 + n tracks)
    under = _cost_query("tracks(first: 47) { nodes { id } }")
    over = _cost_query("tracks(first: 48) { nodes { id } }")
    _, body = await post(client, under, token=token)
    assert not body.get("errors"), body
    assert body["extensions"]["rateLimit"]["cost"] == 50  # ceil(4902 / 100)
    error = refusal((await post(client, over, token=token))[1])
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "cost",
        "maximum": 5000,
        "actual": 5002,
    }
    assert "5002" in error["message"] and "5000" in error["message"]


async def test_cost_reads_first_from_variables_and_defaults(client):
    token, _ = await register(client, "costvars")
    query = _cost_query("tracks(first: $n) { nodes { id } }", "($n: Int)")
    assert not (await post(client, query, {"n": 47}, token=token))[1].get("errors")
    assert (
        refusal((await post(client, query, {"n": 48}, token=token))[1])["extensions"]["actual"]
        == 5002
    )
    # No `first`: a page of 20 tracks, each with 100 versions, three times over.
    page = "{ nodes { versions(first: 100) { nodes { id } } } }"
    absent = f'{{ band(slug: "x") {{ a: tracks {page} b: tracks {page} c: tracks {page} }} }}'
    error = refusal((await post(client, absent, token=token))[1])
    assert error["extensions"]["actual"] == 1 + 3 * (1 + 20 * (1 + 1 + 100))


def test_cost_is_githubs_node_count_with_every_object():
    document = parse(
        "{ viewer { bands(first: 50) { pageInfo { hasNextPage } edges { node { name"
        " tracks(first: 10) { totalCount nodes { title latestVersion { label } } } } } } } }"
    )
    measured = measure_operation(schema._schema, document, document.definitions[0], None)
    # viewer, connection, pageInfo; 50 edges, 50 bands; 50 track connections, 500 tracks,
    # 500 latest versions.
    assert measured.cost == 1 + 1 + 1 + 50 + 50 + 50 + 500 + 500
    assert measured.depth == 8 and measured.aliases == 0


def test_measuring_is_linear_in_fragments_spread_many_times():
    # Each fragment spreads the next twice: written out, 2**60 fields. Measured once each.
    fragments = " ".join(f"fragment F{i} on User {{ ...F{i + 1} ...F{i + 1} }}" for i in range(60))
    document = parse(f"{{ viewer {{ ...F0 }} }} {fragments} fragment F60 on User {{ x: handle }}")
    measured = measure_operation(schema._schema, document, document.definitions[0], None)
    assert measured.aliases == 2**60 and measured.depth == 2


# bandEvents(1) comment(2) version(3) track(4) band(5) tracks(6) nodes(7) title(8)
DEEP_SUBSCRIPTION = (
    "subscription Deep($id: ID!) { bandEvents(bandId: $id) { ... on CommentAdded { comment {"
    " version { track { band { tracks { nodes { title } } } } } } } } }"
)


async def test_limits_apply_to_subscriptions(app_and_engine, client):
    app, _ = app_and_engine
    token, _ = await register(client, "subscriber")
    band = (
        await post(client, 'mutation { createBand(input: {name: "Subs"}) { id } }', token=token)
    )[1]
    band_id = band["data"]["createBand"]["id"]
    deep = DEEP_SUBSCRIPTION
    fine = "subscription($id: ID!) { bandEvents(bandId: $id) { __typename } }"
    async with serve(app) as url:
        socket = await connect(url, token)
        try:
            # Within the limits: taken (multiplexed), and nothing comes until an event.
            await subscribe(socket, "fine", fine, {"id": band_id})
            await subscribe(socket, "deep", deep, {"id": band_id})
            message = await next_message(socket)
            assert message["id"] == "deep" and message["type"] == "error", message
            [error] = message["payload"]
            assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
            assert error["extensions"]["actual"] == 8
        finally:
            await socket.close()


async def test_trusted_subscriptions_may_nest_deeper_on_the_websocket(
    database_url, engine, tmp_path
):
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_text(json.dumps({sha256_hex(DEEP_SUBSCRIPTION): DEEP_SUBSCRIPTION}))
    async with app_client(database_url, tmp_path, trusted_documents=str(manifest)) as http:
        token, _ = await register(http, "deepsubscriber")
        band = await post(
            http, 'mutation { createBand(input: {name: "Deep"}) { id } }', token=token
        )
        variables = {"id": band[1]["data"]["createBand"]["id"]}
        async with serve(http.app) as url:  # type: ignore[attr-defined]
            socket = await connect(url, token)
            try:
                await subscribe(socket, "trusted", DEEP_SUBSCRIPTION, variables)
                # The same text one space longer is not ours: refused, and answered first
                # of all, so the trusted one before it was taken.
                await subscribe(socket, "stranger", DEEP_SUBSCRIPTION + " ", variables)
                message = await next_message(socket)
                assert message["id"] == "stranger" and message["type"] == "error", message
                assert message["payload"][0]["extensions"]["actual"] == 8
            finally:
                await socket.close()


async def test_request_body_just_under_and_over_the_limit(client):
    def body_of(size: int) -> bytes:
        shell = json.dumps({"query": "{ __typename }", "variables": {"pad": ""}})
        return shell.replace('"pad": ""', '"pad": "' + "x" * (size - len(shell)) + '"').encode()

    limit = 1024**2
    headers = {"Content-Type": "application/json"}
    under = await client.post("/graphql", content=body_of(limit), headers=headers)
    assert under.status_code == 200 and under.json()["data"] == {"__typename": "Query"}
    over = await client.post("/graphql", content=body_of(limit + 1), headers=headers)
    assert over.status_code == 413
    assert over.json() == {
        "data": None,
        "errors": [
            {
                "message": f"The request body is larger than the {limit} bytes a GraphQL request may be.",
                "extensions": {"code": "REQUEST_TOO_LARGE", "maxBytes": limit},
            }
        ],
    }

    async def chunked(body: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    # Without a Content-Length (chunked), the body is counted as it comes.
    under = await client.post("/graphql", content=chunked(body_of(limit)), headers=headers)
    assert under.status_code == 200 and under.json()["data"] == {"__typename": "Query"}
    over = await client.post("/graphql", content=chunked(body_of(limit + 1)), headers=headers)
    assert (
        over.status_code == 413
        and over.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
    )


async def test_multipart_uploads_keep_their_own_limit(client):
    operations = json.dumps(
        {
            "query": 'mutation($f: Upload!) { uploadVersion(bandId: "QmFuZDox", file: $f) { id } }',
            "variables": {"f": None},
        }
    )
    response = await client.post(
        "/graphql",
        data={"operations": operations, "map": json.dumps({"0": ["variables.f"]})},
        files={"0": ("take.wav", b"\0" * (2 * 1024**2), "audio/wav")},
    )
    assert response.status_code == 200  # 2 MiB is past the JSON limit, not an upload's
    assert codes(response.json()) == ["UNAUTHENTICATED"]


INTROSPECTION = "{ __schema { queryType { name } } }"


async def test_introspection_only_outside_production(client, database_url, tmp_path):
    _, body = await post(client, INTROSPECTION)
    assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}}
    async with app_client(database_url, tmp_path, environment="production") as http:
        _, body = await post(http, INTROSPECTION)
        assert body.get("data") is None and set(codes(body)) == {"GRAPHQL_VALIDATION_FAILED"}
        assert "introspection" in body["errors"][0]["message"].lower()
        _, body = await post(http, '{ __type(name: "User") { name } }')
        assert set(codes(body)) == {"GRAPHQL_VALIDATION_FAILED"}
        # __typename is no introspection of the schema: clients rely on it.
        _, body = await post(http, "{ __typename }")
        assert body["data"] == {"__typename": "Query"}


SUGGESTIBLE = [
    "{ viewer { handel } }",  # a field
    "{ viewer { bands(frist: 1) { totalCount } } }",  # an argument
    '{ band(slug: "x") { tracks(orderBy: TITEL) { totalCount } } }',  # an enum value
]


async def test_suggestions_only_outside_production(client, database_url, tmp_path):
    for query in SUGGESTIBLE:
        _, body = await post(client, query)
        assert "Did you mean" in body["errors"][0]["message"], body
    async with app_client(database_url, tmp_path, environment="production") as http:
        for query in SUGGESTIBLE:
            _, body = await post(http, query)
            assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"], body
            message = body["errors"][0]["message"]
            assert "Did you mean" not in message and "handle" not in message, message
        # Variables are checked against input types too: no hint there either.
        _, body = await post(
            http,
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
            {"i": {"emial": "a@b.c", "password": "correct horse", "handle": "x"}},
        )
        assert set(codes(body)) == {"BAD_USER_INPUT"}
        assert not any("Did you mean" in error["message"] for error in body["errors"])


async def test_responses_carry_their_request_id(client, monkeypatch):
    response = await client.post("/graphql", json={"query": "{ __typename }"})
    generated = response.headers["x-request-id"]
    assert len(generated) == 16
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"X-Request-Id": "lb-7f3a.2:9"}
    )
    assert response.headers["x-request-id"] == "lb-7f3a.2:9"
    # Not a sane token (too long, or odd characters that could forge a log line): replaced.
    for odd in ("x" * 65, "a b", "a\tb", "<script>"):
        response = await client.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"X-Request-Id": odd}
        )
        assert response.headers["x-request-id"] not in (odd, generated)
    # Other routes say it too.
    assert "x-request-id" in (await client.get("/healthz")).headers

    from backend.bands import service as bands_service

    async def broken(**_kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(bands_service, "create", broken)
    token, _ = await register(client, "requestid")
    response = await client.post(
        "/graphql",
        json={"query": 'mutation { createBand(input: {name: "X"}) { id } }'},
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": "client-chosen-1"},
    )
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["requestId"] == "client-chosen-1"
    assert response.headers["x-request-id"] == "client-chosen-1"


def test_the_schemas_extensions_are_classes_or_factories():
    served = create_schema(Settings(environment="production", secret_key=SECRET))
    assert served.extensions and not any(isinstance(e, SchemaExtension) for e in served.extensions)
    first, second = served.get_extensions(), served.get_extensions()
    assert not {id(e) for e in first} & {id(e) for e in second}
    assert any(isinstance(e, LimitsExtension) for e in first)


async def test_concurrent_requests_keep_their_own_limiter_state(client):
    token, _ = await register(client, "concurrent")
    cheap = "{ viewer { handle } }"
    dear = _cost_query("tracks(first: 40) { nodes { id } }")  # 4202: 43 points
    for _ in range(3):
        results = await asyncio.gather(
            *(post(client, query, token=token) for query in [cheap, dear] * 5)
        )
        costs = [body["extensions"]["rateLimit"]["cost"] for _, body in results]
        assert costs == [1, 43] * 5


async def test_limits_leave_the_exported_schema_alone():
    production = create_schema(Settings(environment="production", secret_key=SECRET))
    development = create_schema(Settings(secret_key=SECRET))
    # `schema` is what `backline export-schema` writes (make test checks the file).
    assert production.as_str() == development.as_str() == schema.as_str()


def test_settings_move_the_limits():
    settings = Settings(secret_key=SECRET, max_query_depth=3, max_query_aliases=1)
    limits = create_schema(settings).limits
    assert limits is not None
    document = parse("{ viewer { bands(first: 1) { nodes { a: name b: name } } } }")
    _, errors = limits.check(schema._schema, document, None, None, trusted=False)
    assert [e.extensions["limit"] for e in errors] == ["depth", "aliases"]
