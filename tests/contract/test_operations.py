"""The front end's operations (frontend-contract/persisted-documents.json) under the
server's own rules: every document parses within the token limit, validates against the
app's schema and passes the limits of a trusted document (depth, aliases, directives,
cost, measured with each operation's variable defaults); the operations other code is
written against are all there; and an app with default settings trusts and runs them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import (
    DocumentNode,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import MaxIntrospectionDepthRule

from backend.app import create_app
from backend.core.settings import Settings
from backend.graphql.limits import Limits
from backend.graphql.persisted import trusted
from backend.graphql.persisted.ids import sha256_hex
from backend.graphql.schema import create_schema

CONTRACT = trusted.PROJECT_ROOT / "frontend-contract"
MANIFEST = CONTRACT / "persisted-documents.json"
GENERATED_MANIFEST = CONTRACT / "src" / "gql" / "persisted-documents.json"

Q, M, S = OperationType.QUERY, OperationType.MUTATION, OperationType.SUBSCRIPTION
# The operations the contract tests and the reference app are written against: renaming or
# dropping one must fail here, not there.
REQUIRED = {
    # auth
    "Register": M,
    "Login": M,
    "RefreshToken": M,
    "Logout": M,
    "LogoutEverywhere": M,
    "AuthProviders": Q,
    "ExchangeLoginCode": M,
    # viewer
    "Viewer": Q,
    "ApiTokens": Q,
    "CreateApiToken": M,
    "RevokeApiToken": M,
    "LinkIdentityUrl": M,
    "UnlinkIdentity": M,
    # bands
    "Band": Q,
    "CreateBand": M,
    "UpdateBand": M,
    "CreateInvite": M,
    "AcceptInvite": M,
    "SetMemberRole": M,
    "RemoveMember": M,
    "BandSessions": Q,
    "BandTracks": Q,
    "UpdateSession": M,
    # tracks
    "Track": Q,
    "CreateTrack": M,
    "UpdateTrack": M,
    "MoveVersion": M,
    "MergeTracks": M,
    # a version's page
    "VersionPage": Q,
    # feedback
    "AddComment": M,
    "EditComment": M,
    "DeleteComment": M,
    "ResolveComment": M,
    "React": M,
    "Unreact": M,
    # sources and jobs
    "BandSources": Q,
    "AddSource": M,
    "UpdateSource": M,
    "RemoveSource": M,
    "ScanSource": M,
    "CancelJob": M,
    "Job": Q,
    "BandJobs": Q,
    # uploads
    "UploadVersion": M,
    "CreateUpload": M,
    "UploadPartUrls": M,
    "CompleteUpload": M,
    "AbortUpload": M,
    "UploadStatus": Q,
    # live
    "JobProgress": S,
    "BandEvents": S,
}
BAND_EVENTS = {"VersionAdded", "VersionUpdated", "CommentAdded", "ReactionChanged", "JobUpdated"}


def _manifest() -> dict[str, str]:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def _operation(document: DocumentNode) -> OperationDefinitionNode:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert len(operations) == 1, "a trusted document holds one operation"
    return operations[0]


def _name(text: str) -> str:
    name = _operation(parse(text)).name
    assert name is not None, f"an operation without a name: {text[:80]}"
    return name.value


SETTINGS = Settings()
MANIFEST_DOCUMENTS = sorted(_manifest().items(), key=lambda item: _name(item[1]))


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return create_schema(SETTINGS)._schema


@pytest.fixture(scope="module")
def limits() -> Limits:
    return Limits(SETTINGS)


def test_the_manifest_is_what_the_server_accepts() -> None:
    # Every key the sha256 of its text; the same as the one codegen wrote.
    documents = _manifest()
    assert documents and trusted.read_manifest(MANIFEST) == documents
    assert json.loads(GENERATED_MANIFEST.read_text(encoding="utf-8")) == documents, (
        "persisted-documents.json is not src/gql's: run `make contract`"
    )


def test_the_required_operations_are_all_there() -> None:
    kinds: dict[str, OperationType] = {}
    for text in _manifest().values():
        operation = _operation(parse(text))
        assert operation.name is not None
        name = operation.name.value
        assert name not in kinds, f"two operations are named {name}"
        kinds[name] = operation.operation
    missing = sorted(set(REQUIRED) - set(kinds))
    assert not missing, f"operations other code is written against are gone: {missing}"
    wrong = {name: kinds[name].value for name, kind in REQUIRED.items() if kinds[name] != kind}
    assert not wrong, f"operations of the wrong kind: {wrong}"


def test_band_events_asks_for_every_event(schema: GraphQLSchema) -> None:
    text = next(text for _, text in MANIFEST_DOCUMENTS if _name(text) == "BandEvents")
    events = schema.get_type("BandEvent")
    assert {t.name for t in events.types} == BAND_EVENTS  # type: ignore[union-attr]
    for event in BAND_EVENTS:
        assert f"... on {event} " in text, f"BandEvents does not select {event}"
    assert "__typename" in text


@pytest.mark.parametrize(
    "text", [text for _, text in MANIFEST_DOCUMENTS], ids=[_name(t) for _, t in MANIFEST_DOCUMENTS]
)
def test_each_document_is_within_the_server_rules(
    text: str, schema: GraphQLSchema, limits: Limits
) -> None:
    # The parser stops at the token limit for every document, trusted ones too (Strawberry's
    # MaxTokensLimiter, backend/graphql/limits/__init__.py).
    document = parse(text, max_tokens=SETTINGS.max_query_tokens)
    errors = validate(schema, document, (*specified_rules, MaxIntrospectionDepthRule))
    assert not errors, [error.message for error in errors]
    # As LimitsExtension checks a trusted document, with the operation's own defaults.
    cost, refusals = limits.check(schema, document, _name(text), None, trusted=True)
    assert not refusals, [error.message for error in refusals]
    assert 0 <= cost <= SETTINGS.max_query_cost


# --- an app with default settings ----------------------------------------------------------


def test_an_app_with_default_settings_trusts_the_manifest(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        data_dir=tmp_path,
        secret_key="test-secret-key-that-is-long-enough-for-hs256",
        worker_threads=0,
        watch_sources=False,
    )
    assert not settings.trusted_documents  # the default: frontend-contract's manifest
    app = create_app(settings)
    documents = app.state.persisted.trusted
    assert documents.source == str(trusted.DEFAULT_MANIFEST)
    assert trusted.DEFAULT_MANIFEST.resolve() == MANIFEST.resolve()
    assert len(documents) == len(_manifest())
    assert all(documents.get(key) == text for key, text in _manifest().items())


def _by_name() -> dict[str, str]:
    return {_name(text): sha256_hex(text) for text in _manifest().values()}


async def _run(
    client: httpx.AsyncClient, name: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"documentId": f"sha256:{_by_name()[name]}", "variables": variables}
    return (await client.post("/graphql", json=body, headers=headers)).json()


async def test_a_persisted_only_app_runs_the_pages_by_document_id(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        secret_key="test-secret-key-that-is-long-enough-for-hs256",
        worker_threads=0,
        watch_sources=False,
        persisted_only=True,
    )
    app = create_app(settings)
    handle = f"ops{uuid.uuid4().hex[:10]}"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            credentials = {"email": f"{handle}@example.org", "password": "a long passphrase"}
            body = await _run(client, "Register", {"input": {**credentials, "handle": handle}})
            assert "errors" not in body, body
            token = body["data"]["register"]["accessToken"]

            body = await _run(client, "CreateBand", {"input": {"name": f"Band {handle}"}}, token)
            assert "errors" not in body, body
            band_id = body["data"]["createBand"]["id"]

            body = await _run(client, "Viewer", {}, token)
            assert body["data"]["viewer"]["handle"] == handle, body
            assert [b["id"] for b in body["data"]["viewer"]["bands"]["nodes"]] == [band_id]

            body = await _run(client, "BandTracks", {"bandId": band_id}, token)
            assert body["data"]["band"]["tracks"]["totalCount"] == 0, body

            # The deepest page (8 levels): it runs, and finds nothing under this id.
            missing = "VHJhY2tWZXJzaW9uOjk5OTk5OQ=="  # TrackVersion:999999
            body = await _run(client, "VersionPage", {"id": missing}, token)
            assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"], body
