"""Fuzz the running GraphQL schema with schemathesis (GraphQL mode). Prints figures; the
exit status says whether anything failed.

It migrates a SQLite file in a temp dir (or, with `--db postgresql`, a throw-away
PostgreSQL database as bench/graphql_page.py makes them), seeds one band through GraphQL
and the test factories (tests/factories.py: four users, a band with two members, tracks,
takes, a rehearsal session, comments, reactions, a source and a job, and a stranger's band;
plus a few more tracks, takes and a reply), then starts `backend.app:create_app` under uvicorn on
a free loopback port (embedded mode, as `backline serve` runs it) and loads the schema from
it by introspection (`schemathesis.graphql.from_url`).

Every root field of Query and Mutation is one schemathesis operation. For each, Hypothesis
draws documents from the operation's strategy (hypothesis-graphql underneath): positive
ones (valid against the schema) and a share of negative ones (arguments of the wrong type,
missing, out of range). Each document is sent as one POST, as the seeded admin (60 %), a
member (10 %), a stranger with a band of their own (10 %) or anonymously (20 %); in
positive documents, an id, slug, invite, token, email or folder argument is replaced with
probability 0.6, by a real one (ids the server hands out later are collected as it runs)
or by the drawn string put in a shape that passes the first check (`http://<drawn>`, a
path inside the allowed folder, `base64("Track:<drawn>")`, ...), so that resolvers get
past "not found" and "not a valid id". DateTime arguments come with "Z", another offset,
none, or as a bare date (schemathesis' own strategy always writes "Z"). Queries go first,
then mutations, the ones that take things away (merge, delete, remove, logout) last. Any
rate-limit budget the settings have (BACKLINE_RATE_LIMIT_*_POINTS) is set out of reach;
the operations the limits refuse anyway (QUERY_TOO_COMPLEX, ...) are counted apart.

After the operations, 16 requests around them ("the HTTP envelope"): subscriptions sent
over POST, and the usual client mistakes (variables that are not an object, an unknown
operationName, a batch, a body that is not JSON, GET without a query, ...), checked the
same way.

Every response is checked for:

- ``http_5xx``: a status of 500 or above;
- ``hang``: no answer within the per-request timeout (``--timeout``, 10 s);
- ``connection``: the server closed or refused the connection instead of answering;
- ``not_graphql``: a body that is not a JSON object with ``data`` or ``errors``;
- ``uncoded``: an error without ``extensions.code``;
- ``internal``: an error coded INTERNAL_SERVER_ERROR (an unexpected exception, masked);
- ``null_violation``: a non-nullable field that resolved to null;
- ``miscoded``: an error raised while executing (it has a ``path``) but coded as if the
  document had not parsed or validated.

It prints the operations tried, the root fields reached and resolved, the error codes seen,
the failures by kind with the shortest document found for each (operation, kind, message),
the server's log lines for the masked errors (by request id), and the wall time.

    .tools/bin/uv run --group bench python bench/fuzz.py                     # ~4 min
    .tools/bin/uv run --group bench python bench/fuzz.py --db postgresql
    .tools/bin/uv run --group bench python bench/fuzz.py --seconds 60        # quick
    .tools/bin/uv run --group bench python bench/fuzz.py --max-examples 20 --only band,node
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import importlib.metadata
import json
import os
import random
import re
import sqlite3
import sys
import tempfile
import time
import traceback
import uuid
import wave
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import graphql
import httpx
import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.generation import GenerationMode
from schemathesis.graphql import nodes

from backend.app import create_app
from backend.core.database import create_engine
from backend.core.migrations import upgrade_to_head
from backend.core.settings import Settings
from bench import report
from bench.server import (
    SECRET_KEY,
    create_postgres_database,
    drop_postgres_database,
    postgres_version,
    serve,
)
from tests.factories import BandWorld, add_take, build_band_world
from tests.graphql_client import gql

TOKEN_MINUTES = 600  # the seeded tokens outlive any run
# Mutations that take seeded things away: fuzzed last, so the rest still find them.
DESTRUCTIVE = (
    "mergeTracks",
    "moveVersion",
    "deleteComment",
    "removeSource",
    "removeMember",
    "setMemberRole",
    "logout",
    "logoutEverywhere",
)
# Who sends a case: drawn per case (so Hypothesis can replay it), weights in tenths.
IDENTITIES = ("admin",) * 6 + ("member", "stranger", "anonymous", "anonymous")
SUBSTITUTION_PROBABILITY = 0.6
POOL_CAP = 40
MIN_CASES = 5  # per run, whatever the time budget says  # ids kept per type, seeded and collected
# Codes that mean a limit refused the operation (the limits other work adds), counted apart.
LIMIT_CODES = {"RATE_LIMITED", "QUERY_TOO_COMPLEX", "REQUEST_TOO_LARGE", "PERSISTED_QUERY_REQUIRED"}
# `code_error` labels errors raised before execution with these; one with a path is not that.
PRE_EXECUTION_CODES = {"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED"}
NULL_VIOLATION = "Cannot return null for non-nullable field"


# --------------------------------------------------------------------------- seeding


@dataclass
class Seeded:
    world: BandWorld
    refresh_token: str
    library: Path
    pool: dict[str, list[str]] = field(default_factory=dict)
    strings: dict[str, list[str]] = field(default_factory=dict)


def _gid_type(gid: str) -> str | None:
    try:
        decoded = base64.urlsafe_b64decode(gid.encode("ascii")).decode()
    except (UnicodeError, binascii.Error, ValueError):
        return None
    type_name, _, pk = decoded.partition(":")
    return type_name if pk.isdigit() and type_name.isidentifier() else None


def _write_wav(path: Path, seconds: float = 0.2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x01" * int(8000 * seconds))


async def seed(settings: Settings, workdir: Path) -> Seeded:
    """The band world, built in-process over ASGI before the server starts."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://backline.test"
        ) as client,
    ):
        world = await build_band_world(client, app.state.session_factory)
        admin, member = world.tokens["admin"], world.tokens["member"]
        track = """mutation($b: ID!, $t: String!, $g: [String!]) {
          createTrack(bandId: $b, title: $t, tags: $g) { id } }"""
        for title, tags in (("Groove", ["funk"]), ("Ballad", ["slow", "live"]), ("Intro", [])):
            await gql(client, track, {"b": world.band_id, "t": title, "g": tags}, token=admin)
        for title, day in (("Groove", date(2024, 3, 8)), ("Groove", date(2024, 3, 15))):
            await add_take(
                app.state.session_factory, band_id=world.band_id, title=title, session_date=day
            )
        reply = """mutation($v: ID!, $p: ID!) {
          addComment(input: {versionId: $v, body: "Slower?", parentId: $p, atMs: 500, endMs: 900})
          { id }
        }"""
        (
            await gql(
                client,
                reply,
                {"v": world.version_id, "p": world.admin_comment_id},
                token=member,
            )
        ).ok()
        login = """mutation { login(input: {email: "zed@example.org", password: "correct horse"})
                   { refreshToken } }"""
        refresh = (await gql(client, login)).ok()["login"]["refreshToken"]

    library = workdir / "library" / "hum"
    _write_wav(library / "240301" / "song" / "take1.wav")
    _write_wav(library / "240308" / "groove.wav")
    (library / "notes.txt").write_text("not audio\n")
    seeded = Seeded(world=world, refresh_token=refresh, library=library)
    for gid in (
        world.band_id,
        world.track_id,
        world.other_track_id,
        world.version_id,
        world.second_version_id,
        world.session_id,
        world.admin_comment_id,
        world.member_comment_id,
        world.job_id,
        world.source_id,
        world.foreign_band_id,
        world.foreign_track_id,
        world.foreign_version_id,
        *world.user_ids.values(),
    ):
        remember(seeded.pool, gid)
    seeded.strings = {
        "slug": ["hum", "elsewhere"],
        "token": [world.invite_token],
        "refreshToken": [refresh],
        "root": [str(library), str(library.parent), "http://127.0.0.1:9/dav/"],
        "email": ["ada@example.org", "zed@example.org"],
        "handle": ["ada", "ben"],
        "password": ["correct horse", "a long passphrase"],
    }
    return seeded


def remember(pool: dict[str, list[str]], gid: Any) -> None:
    if not isinstance(gid, str):
        return
    type_name = _gid_type(gid)
    if type_name is None:
        return
    ids = pool.setdefault(type_name, [])
    if gid not in ids and len(ids) < POOL_CAP:
        ids.append(gid)


def harvest(pool: dict[str, list[str]], data: Any) -> None:
    """Collect every `id` in a response, so later cases can name what mutations made."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "id":
                remember(pool, value)
            else:
                harvest(pool, value)
    elif isinstance(data, list):
        for item in data:
            harvest(pool, item)


# --------------------------------------------------------------------------- substitution

ID_ARGUMENT_TYPES = {
    "bandId": ("Band",),
    "trackId": ("Track",),
    "sourceTrackId": ("Track",),
    "targetTrackId": ("Track",),
    "versionId": ("TrackVersion",),
    "sessionId": ("RehearsalSession",),
    "sourceId": ("Source",),
    "userId": ("User",),
    "parentId": ("Comment",),
    "jobId": ("Job",),
    "targetId": ("Track", "TrackVersion", "Comment"),
}
# `id` / `ids` by the field they are an argument of.
ID_FIELD_TYPES = {
    "band": ("Band",),
    "updateBand": ("Band",),
    "updateTrack": ("Track",),
    "updateSession": ("RehearsalSession",),
    "updateSource": ("Source",),
    "removeSource": ("Source",),
    "job": ("Job",),
    "cancelJob": ("Job",),
    "editComment": ("Comment",),
    "deleteComment": ("Comment",),
    "resolveComment": ("Comment",),
}


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def shape(name: str, drawn: str, seeded: Seeded, rng: random.Random) -> str | None:
    """The fuzzer's own string in a shape that gets it past the first check (a URL, a
    path inside the allowed folder, an id or cursor that decodes), or None."""
    long = (drawn or "x") * (300 // max(1, len(drawn)) + 1)  # one path part > 255 bytes
    shapes = {
        "root": [
            f"http://{drawn}",
            f"https://{drawn}/dav/",
            f"http://[{drawn}",
            f"https://host:{drawn}/",
            f"{seeded.library}/{drawn}",
            f"{seeded.library}/{long}",
        ],
        "email": [f"{drawn}@example.org"],
        "after": [_b64(f"cursor:{drawn}")],
        "filename": [f"{drawn}.wav", f"{long}.wav"],
    }
    if name in ID_ARGUMENT_TYPES or name in ("id", "ids"):
        type_name = rng.choice(ID_ARGUMENT_TYPES.get(name) or ("Band", "Track", "Comment"))
        return _b64(f"{type_name}:{drawn}")
    return rng.choice(shapes[name]) if name in shapes else None


class _Substitute(graphql.Visitor):
    """Replaces string literals of id-like (and slug, token, root) arguments by real ones."""

    def __init__(self, seeded: Seeded, rng: random.Random) -> None:
        super().__init__()
        self.seeded, self.rng, self.fields = seeded, rng, [""]
        self.changed = False

    def enter_field(self, node: graphql.FieldNode, *_: Any) -> None:
        self.fields.append(node.name.value)

    def leave_field(self, *_: Any) -> None:
        self.fields.pop()

    def _real(self, name: str) -> str | None:
        pool = self.seeded.pool
        if name in ("email", "handle") and self.rng.random() < 0.5:
            fresh = f"fuzz{self.rng.randrange(10**9)}"  # a new account
            return f"{fresh}@example.org" if name == "email" else fresh
        if name in self.seeded.strings:
            return self.rng.choice(self.seeded.strings[name])
        if name in ID_ARGUMENT_TYPES:
            types = ID_ARGUMENT_TYPES[name]
        elif name in ("id", "ids"):
            types = ID_FIELD_TYPES.get(self.fields[-1], tuple(pool))
        else:
            return None
        # Now and then any id at all: one of another type must be refused, not crash.
        if self.rng.random() < 0.1:
            types = tuple(pool)
        candidates = [gid for type_name in types for gid in pool.get(type_name, [])]
        return self.rng.choice(candidates) if candidates else None

    def _value(self, name: str, value: graphql.ValueNode) -> graphql.ValueNode | None:
        # An ID literal may be a string or an int; a slug, token or root only a string.
        if isinstance(value, graphql.StringValueNode) or (
            isinstance(value, graphql.IntValueNode) and name not in self.seeded.strings
        ):
            if self.rng.random() >= SUBSTITUTION_PROBABILITY:
                return None
            shaped = shape(name, value.value, self.seeded, self.rng)
            real = self._real(name) if shaped is None or self.rng.random() < 0.5 else shaped
            if real is not None:
                self.changed = True
                return graphql.StringValueNode(value=real)
        elif isinstance(value, graphql.ListValueNode) and name == "ids":
            values = [self._value(name, item) or item for item in value.values]
            return graphql.ListValueNode(values=tuple(values))
        return None

    def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> Any:
        new = self._value(node.name.value, node.value)
        return None if new is None else graphql.ArgumentNode(name=node.name, value=new)

    def enter_object_field(self, node: graphql.ObjectFieldNode, *_: Any) -> Any:
        new = self._value(node.name.value, node.value)
        return None if new is None else graphql.ObjectFieldNode(name=node.name, value=new)


def substitute(document: str, seeded: Seeded, rng: random.Random) -> str:
    try:
        ast = graphql.parse(document)
    except graphql.GraphQLError:
        return document
    visitor = _Substitute(seeded, rng)
    new = graphql.visit(ast, visitor)
    return graphql.print_ast(new) if visitor.changed else document


# --------------------------------------------------------------------------- checking


@dataclass
class Failure:
    kind: str
    operation: str
    identity: str
    status: int | None
    message: str
    document: str
    request_id: str
    count: int = 1


@dataclass
class Tally:
    operations: int = 0
    by_mode: Counter[str] = field(default_factory=Counter)
    by_identity: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    ops_with_code: Counter[str] = field(default_factory=Counter)
    limited: int = 0
    tried: Counter[str] = field(default_factory=Counter)
    reached: set[str] = field(default_factory=set)
    resolved: set[str] = field(default_factory=set)
    failures: dict[tuple[str, str, str], Failure] = field(default_factory=dict)
    failure_kinds: Counter[str] = field(default_factory=Counter)
    failed_operations: int = 0
    latencies: list[float] = field(default_factory=list)
    substituted: int = 0
    retried: int = 0  # sent again after the connection broke


def _signature(message: str) -> str:
    """A message with ids, numbers and quoted values taken out: one failure, many cases."""
    message = re.sub(r"\b[0-9a-f]{16}\b", "<request id>", message)
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message)
    return re.sub(r"\d+", "N", message)[:160]


def check(
    tally: Tally,
    *,
    label: str,
    field_name: str,
    identity: str,
    document: str,
    request_id: str,
    response: httpx.Response | None,
    elapsed: float,
    transport_error: str | None = None,
) -> None:
    problems: list[tuple[str, str]] = []
    status = response.status_code if response is not None else None
    body: Any = None
    if transport_error is not None:
        problems.append(("connection", transport_error))
    elif response is None:
        problems.append(("hang", f"no answer within {elapsed:.1f} s"))
    else:
        tally.statuses[response.status_code] += 1
        if response.status_code >= 500:
            problems.append(("http_5xx", f"HTTP {response.status_code}: {response.text[:200]}"))
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not ({"data", "errors"} & body.keys()):
            if response.status_code < 500:
                problems.append(("not_graphql", f"HTTP {status}: {response.text[:200]}"))
            body = {}
    errors = (body or {}).get("errors") or []
    seen_codes: set[str] = set()
    for error in errors:
        extensions = error.get("extensions") if isinstance(error, dict) else None
        code = extensions.get("code") if isinstance(extensions, dict) else None
        message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
        path = error.get("path") if isinstance(error, dict) else None
        if not code:
            problems.append(("uncoded", message))
            tally.codes["(none)"] += 1
            continue
        tally.codes[code] += 1
        seen_codes.add(code)
        if code == "INTERNAL_SERVER_ERROR":
            problems.append(("internal", f"{'.'.join(map(str, path or []))}: {message}"))
        elif NULL_VIOLATION in message:
            problems.append(("null_violation", message))
        elif code in PRE_EXECUTION_CODES and path:
            problems.append(("miscoded", f"{code} at {'.'.join(map(str, path))}: {message}"))
    for code in seen_codes:
        tally.ops_with_code[code] += 1
    if seen_codes & LIMIT_CODES:
        tally.limited += 1
    data = (body or {}).get("data")
    if isinstance(data, dict) and field_name in data:
        tally.reached.add(label)
        if data[field_name] is not None:
            tally.resolved.add(label)
    if not errors and data is None and response is not None and not problems:
        problems.append(("not_graphql", "neither data nor errors"))
    if problems:
        tally.failed_operations += 1
    for kind, message in problems:
        tally.failure_kinds[kind] += 1
        key = (label, kind, _signature(message))
        known = tally.failures.get(key)
        if known is None:
            tally.failures[key] = Failure(
                kind, label, identity, status, message, document, request_id
            )
        else:
            known.count += 1
            if len(document) < len(known.document):
                known.document, known.identity, known.request_id = document, identity, request_id
                known.message, known.status = message, status


# --------------------------------------------------------------------------- fuzzing


def _register_scalars() -> None:
    """Strategies for Upload, which schemathesis does not know, and for DateTime, whose
    own strategy always ends in "Z": clients also send other offsets, none, or a date."""
    upload = st.sampled_from(["file", "", "0"]).map(nodes.String) | st.just(nodes.Null)
    schemathesis.graphql.scalar("Upload", upload)
    offsets = st.sampled_from(["Z", "+00:00", "+05:30", "-08:00", ""])
    moments = st.datetimes().map(lambda moment: moment.isoformat())
    datetimes = st.tuples(moments, offsets).map("".join) | st.dates().map(str)
    schemathesis.graphql.scalar("DateTime", datetimes.map(nodes.String))


def _order(operations: list[Any]) -> list[Any]:
    def key(operation: Any) -> tuple[int, int]:
        name = operation.definition.field_name
        if operation.definition.is_query:
            return (0, 0)
        return (2, DESTRUCTIVE.index(name)) if name in DESTRUCTIVE else (1, 0)

    return sorted(operations, key=key)  # stable: schema order within each group


JOB_PROGRESS = 'subscription { jobProgress(jobId: "%s") { id status } }'
BAND_EVENTS = 'subscription { bandEvents(bandId: "%s") { __typename } }'


def envelope_requests(seeded: Seeded) -> list[tuple[str, dict[str, Any]]]:
    """Requests around the operation rather than in it, each (name, httpx arguments): what
    a client gets wrong in the HTTP request, and subscriptions sent over HTTP."""
    job, band = seeded.world.job_id, seeded.world.band_id
    viewer = "{ viewer { id } }"
    first = "query($n: Int) { viewer { bands(first: $n) { totalCount } } }"
    as_json = {"content-type": "application/json"}

    def post(body: Any) -> dict[str, Any]:
        return {"json": body}

    return [
        ("subscription jobProgress over POST", post({"query": JOB_PROGRESS % job})),
        ("subscription bandEvents over POST", post({"query": BAND_EVENTS % band})),
        ("variables not an object", post({"query": viewer, "variables": "x"})),
        ("variable out of range", post({"query": first, "variables": {"n": 2**40}})),
        ("unknown operationName", post({"query": viewer, "operationName": "Nope"})),
        ("two operations, no operationName", post({"query": f"query A {viewer} query B {viewer}"})),
        ("query not a string", post({"query": 1})),
        ("no query", post({})),
        ("a batch", post([{"query": viewer}])),
        ("extensions not an object", post({"query": viewer, "extensions": "x"})),
        ("body not JSON", {"content": b"{not json", "headers": as_json}),
        ("body not UTF-8", {"content": b"\xff\xfe", "headers": as_json}),
        (
            "text/plain body",
            {"content": viewer.encode(), "headers": {"content-type": "text/plain"}},
        ),
        (
            "GET, variables not JSON",
            {"method": "GET", "params": {"query": viewer, "variables": "{"}},
        ),
        ("GET without a query", {"method": "GET", "params": {}}),
        (
            "GET of a mutation",
            {"method": "GET", "params": {"query": "mutation { logoutEverywhere }"}},
        ),
    ]


def check_envelope(client: httpx.Client, seeded: Seeded, tally: Tally) -> None:
    token = seeded.world.tokens["admin"]
    for name, request in envelope_requests(seeded):
        method = request.pop("method", "POST")
        # As an API client asks (a browser's GET without a query gets GraphiQL).
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        headers |= request.pop("headers", {})
        request_id = uuid.uuid4().hex[:16]
        headers["X-Request-Id"] = request_id
        sent = time.monotonic()
        response: httpx.Response | None
        try:
            response = client.request(method, "/graphql", headers=headers, **request)
        except httpx.TimeoutException:
            response = None
        tally.operations += 1
        shown = request.get("json", request.get("params", request.get("content")))
        check(
            tally,
            label=name,
            field_name="",
            identity="admin",
            document=f"{method} {json.dumps(shown) if not isinstance(shown, bytes) else shown}",
            request_id=request_id,
            response=response,
            elapsed=time.monotonic() - sent,
        )


@dataclass
class Runner:
    """Sends each case and checks its answer."""

    client: httpx.Client
    seeded: Seeded
    tokens: dict[str, str | None]
    tally: Tally
    dump: Any = None

    def send(
        self, operation: Any, mode: GenerationMode, case: Any, identity: str, rng_seed: int
    ) -> None:
        label, field_name = operation.label, operation.definition.field_name
        document = case.body
        if mode is GenerationMode.POSITIVE:
            new = substitute(document, self.seeded, random.Random(rng_seed))
            self.tally.substituted += new is not document
            document = new
        request_id = uuid.uuid4().hex[:16]
        headers = {"X-Request-Id": request_id}
        if self.tokens[identity]:
            headers["Authorization"] = f"Bearer {self.tokens[identity]}"
        sent = time.monotonic()
        response: httpx.Response | None
        transport_error = None
        for attempt in range(2):
            try:
                response = self.client.post("/graphql", json={"query": document}, headers=headers)
                transport_error = None
                break
            except httpx.TimeoutException:
                response = None
                break
            except httpx.TransportError as error:  # the server dropped the connection
                # Once more on a new connection: a kept-alive one the server closed after
                # 5 idle seconds (a slow draw) fails the same way without anything wrong.
                response, transport_error = None, f"{type(error).__name__}: {error}"
                self.tally.retried += attempt == 0
        elapsed = time.monotonic() - sent
        tally = self.tally
        tally.latencies.append(elapsed)
        tally.operations += 1
        tally.by_mode[mode.name.lower()] += 1
        tally.by_identity[identity] += 1
        tally.tried[label] += 1
        if self.dump is not None:
            answer = None if response is None else response.text[:2000]
            status = None if response is None else response.status_code
            line = {"operation": label, "mode": mode.name.lower(), "as": identity}
            line |= {"document": document, "status": status, "answer": answer}
            self.dump.write(json.dumps(line) + "\n")
        check(
            tally,
            label=label,
            field_name=field_name,
            identity=identity,
            document=document,
            request_id=request_id,
            response=response,
            elapsed=elapsed,
            transport_error=transport_error,
        )
        if response is not None and "json" in response.headers.get("content-type", ""):
            with contextlib.suppress(ValueError, AttributeError):
                harvest(self.seeded.pool, response.json().get("data"))

    def run(
        self, operation: Any, mode: GenerationMode, examples: int, seed: int, deadline: float
    ) -> tuple[int, str]:
        """Up to ``examples`` cases of one operation in one mode, until ``deadline``."""
        cases = 0

        def one(case: Any, identity: str, rng_seed: int) -> None:
            nonlocal cases
            # A few cases even past the deadline: the first draw of a big type can take seconds.
            if cases >= MIN_CASES and time.monotonic() > deadline:
                return
            cases += 1
            self.send(operation, mode, case, identity, rng_seed)

        test = given(
            case=operation.as_strategy(generation_mode=mode),
            identity=st.sampled_from(IDENTITIES),
            # A seed, not st.randoms(): Hypothesis' own randoms lean to 0.0 and index 0.
            rng_seed=st.integers(0, 2**32),
        )(one)
        test = hypothesis_settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=(Phase.explicit, Phase.generate),
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
        )(test)
        notes = []
        for attempt in range(3):
            try:
                hypothesis.seed(seed + 1000 * attempt)(test)()
                break
            except FlakyStrategyDefinition as error:
                # hypothesis-graphql now and then draws an interface differently when
                # Hypothesis replays a choice sequence; another seed gets past it.
                notes.append(f"{type(error).__name__} (seed {seed + 1000 * attempt})")
            except Exception as error:  # a generation problem of this operation: go on
                inner = getattr(error, "exceptions", None) or [error]
                notes.extend(
                    "".join(traceback.format_exception(exception)[-3:]).strip()
                    for exception in inner
                )
                break
        return cases, "; ".join(notes)


def fuzz(
    url: str, seeded: Seeded, args: argparse.Namespace, tally: Tally, envelope: Tally
) -> list[tuple[str, str, int, float]]:
    """Run every operation, then the envelope requests; (label, mode, cases, seconds) for
    each run."""
    _register_scalars()
    admin = seeded.world.tokens["admin"]
    schema = schemathesis.graphql.from_url(
        f"{url}/graphql", headers={"Authorization": f"Bearer {admin}"}, timeout=30
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    if args.only:
        wanted = set(args.only.split(","))
        operations = [op for op in operations if op.definition.field_name in wanted]
    operations = _order(operations)
    tokens = {
        "admin": admin,
        "member": seeded.world.tokens["member"],
        "stranger": seeded.world.tokens["stranger"],
        "anonymous": None,
    }
    negative = max(0, round(args.max_examples * args.negative_share))
    runs = [(op, GenerationMode.POSITIVE, args.max_examples) for op in operations]
    if negative:
        runs += [(op, GenerationMode.NEGATIVE, negative) for op in operations]
        runs.sort(key=lambda run: operations.index(run[0]))  # each op's negative after it
    queries = sum(op.definition.is_query for op in operations)
    print(
        f"schema: {len(operations)} root fields ({queries} queries, "
        f"{len(operations) - queries} mutations), {len(runs)} runs of up to "
        f"{args.max_examples} positive / {negative} negative cases",
        flush=True,
    )
    started = time.monotonic()
    summary: list[tuple[str, str, int, float]] = []
    with (
        httpx.Client(base_url=url, timeout=args.timeout) as client,
        contextlib.ExitStack() as stack,
    ):
        dump = stack.enter_context(args.dump.open("w")) if args.dump else None
        runner = Runner(client, seeded, tokens, tally, dump)
        for index, (operation, mode, examples) in enumerate(runs):
            remaining = args.seconds - (time.monotonic() - started)
            if remaining <= 0:
                print(f"time budget spent; {len(runs) - index} runs left out")
                break
            # An even share of what is left: a run that ends early leaves its time to the rest.
            deadline = time.monotonic() + remaining / (len(runs) - index)
            run_started = time.monotonic()
            cases, notes = runner.run(operation, mode, examples, args.seed + index, deadline)
            seconds = time.monotonic() - run_started
            summary.append((operation.label, mode.name.lower(), cases, seconds))
            if notes:
                print(f"  {operation.label} ({mode.name.lower()}): {notes}")
            if args.verbose:
                print(f"  {operation.label:<28} {mode.name.lower():<8} {cases:>5} cases")
        check_envelope(client, seeded, envelope)
    return summary


# --------------------------------------------------------------------------- report


def _traceback_after(lines: list[str], start: int) -> tuple[list[str], str]:
    """The project frames and the exception line of the traceback logged at ``start``
    (the last one of a chain: the exception the resolver raised)."""
    frames: list[str] = []
    exception = ""
    number = start + 1
    while number < len(lines):
        if not lines[number].startswith("Traceback (most recent call last):"):
            break
        frames = []
        number += 1
        while number < len(lines) and (lines[number].startswith(" ") or not lines[number]):
            if lines[number].startswith('  File "') and "site-packages" not in lines[number]:
                frames.append(lines[number].strip())
            number += 1
        exception = lines[number].strip() if number < len(lines) else ""
        number += 1
        while number < len(lines) and not lines[number].strip():
            number += 1
        if number < len(lines) and lines[number].startswith(("The above", "During handling")):
            number += 1
            while number < len(lines) and not lines[number].strip():
                number += 1
            continue
        break
    return frames, exception


def server_log_lines(log_path: Path, request_ids: Iterable[str]) -> list[str]:
    """What the server logged for each masked error: `unexpected error in ... (request
    <id>)`, then the traceback; its last project frames and the exception."""
    text = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
    out: list[str] = []
    for request_id in request_ids:
        for number, line in enumerate(text):
            if f"(request {request_id})" in line:
                frames, exception = _traceback_after(text, number)
                out.append(f"  request {request_id}: {line.strip()}")
                out.extend(f"    {frame}" for frame in frames[-3:])
                out.append(f"    {exception[:300]}")
                break
    return out


def print_failures(tally: Tally, log_path: Path, title: str) -> None:
    print(f"\n=== {title}: {len(tally.failures)} distinct failures (shortest document of each)")
    for failure in sorted(tally.failures.values(), key=lambda f: (f.kind, f.operation)):
        print(
            f"\n[{failure.kind}] {failure.operation} x{failure.count} "
            f"(as {failure.identity}, HTTP {failure.status}, request {failure.request_id})"
        )
        print(f"  {failure.message[:300]}")
        print("  " + failure.document.replace("\n", "\n  "))
    masked = [f.request_id for f in tally.failures.values() if f.kind == "internal"]
    lines = server_log_lines(log_path, masked)
    if lines:
        print(f"\n=== {title}: the server's log for the masked errors")
        print("\n".join(lines))


def print_report(
    tally: Tally,
    envelope: Tally,
    summary: list[tuple[str, str, int, float]],
    wall: float,
    log_path: Path,
) -> int:
    fields = {label for label, *_ in summary}
    print("\n=== GraphQL fuzz: figures")
    print(
        f"operations tried: {tally.operations:,} in {wall:.0f} s "
        f"({tally.operations / wall:.1f}/s); "
        + ", ".join(f"{mode} {count:,}" for mode, count in tally.by_mode.items())
    )
    print("as: " + ", ".join(f"{who} {count:,}" for who, count in tally.by_identity.most_common()))
    print(f"positive cases with a real or shaped id/slug/token/root put in: {tally.substituted:,}")
    print(
        f"root fields: {len(fields)} fuzzed, {len(tally.reached)} reached execution "
        f"(`data` carried the field), {len(tally.resolved)} resolved to a value at least once"
    )
    never = sorted(fields - tally.resolved)
    if never:
        print("  never resolved to a value: " + ", ".join(never))
    lat = sorted(tally.latencies) or [0.0]
    print(
        f"latency: p50 {lat[len(lat) // 2] * 1000:.0f} ms, p99 "
        f"{lat[int(len(lat) * 0.99)] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms"
    )
    print(
        "HTTP statuses: "
        + ", ".join(f"{s} {n:,}" for s, n in sorted(tally.statuses.items()))
        + f" (sent again after a broken connection: {tally.retried})"
    )
    print(
        "error codes (errors / operations with it): "
        + ", ".join(
            f"{code} {count:,}/{tally.ops_with_code[code]:,}"
            for code, count in tally.codes.most_common()
        )
    )
    share = tally.limited / tally.operations if tally.operations else 0
    print(
        f"refused by a limit (RATE_LIMITED, QUERY_TOO_COMPLEX, ...): {tally.limited:,} "
        f"({share:.1%})"
    )
    print(
        f"failed operations: {tally.failed_operations:,}; by kind: "
        + (", ".join(f"{k} {n:,}" for k, n in tally.failure_kinds.most_common()) or "none")
    )
    print(
        f"HTTP envelope (malformed requests, subscriptions over POST): {envelope.operations} "
        f"requests, {envelope.failed_operations} failed; by kind: "
        + (", ".join(f"{k} {n:,}" for k, n in envelope.failure_kinds.most_common()) or "none")
    )
    if tally.failures:
        print_failures(tally, log_path, "operations")
    if envelope.failures:
        print_failures(envelope, log_path, "HTTP envelope")
    return 1 if tally.failures or envelope.failures else 0


# --------------------------------------------------------------------------- main


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--max-examples", type=int, default=150, help="positive cases per root field (cap)"
    )
    parser.add_argument(
        "--negative-share",
        type=float,
        default=0.25,
        help="negative cases per root field, as a share of --max-examples",
    )
    parser.add_argument(
        "--seconds", type=float, default=300, help="time budget for all the fuzzing"
    )
    parser.add_argument("--timeout", type=float, default=10, help="per request, seconds")
    parser.add_argument("--seed", type=int, default=20261202, help="Hypothesis seed")
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="SQLite file (embedded default) or a throw-away PostgreSQL database",
    )
    parser.add_argument("--only", default="", help="comma-separated root fields to fuzz")
    parser.add_argument("--verbose", action="store_true", help="a line per operation run")
    parser.add_argument("--dump", type=Path, help="write every case and answer here (JSON lines)")
    return parser.parse_args(list(argv) if argv is not None else None)


def _server_env() -> dict[str, str]:
    """Settings for the fuzzed server: long-lived tokens; any rate limit far out of reach."""
    env = {"BACKLINE_ACCESS_TOKEN_MINUTES": str(TOKEN_MINUTES)}
    for name in Settings.model_fields:
        # The budgets, not the window: the limiter still counts every request.
        if name.startswith("rate_limit") and name.endswith("points"):
            env[f"BACKLINE_{name.upper()}"] = "1000000000"
    return env


async def run(args: argparse.Namespace, url: str, workdir: Path, started: float) -> int:
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()
    env = _server_env()
    settings = Settings(
        database_url=url,
        secret_key=SECRET_KEY,
        data_dir=workdir,
        access_token_minutes=TOKEN_MINUTES,
        watch_sources=False,
    )
    seeded = await seed(settings, workdir)
    print(
        "seeded: "
        + ", ".join(f"{len(ids)} {kind}" for kind, ids in sorted(seeded.pool.items()))
        + f" (ids); server env: {', '.join(sorted(env))}",
        flush=True,
    )
    tally, envelope = Tally(), Tally()
    async with serve(url, workdir, app="backend.app:create_app", env=env) as server:
        print(f"serving {server.base_url}/graphql (pid {server.pid})", flush=True)
        fuzz_started = time.perf_counter()
        summary = await asyncio.to_thread(fuzz, server.base_url, seeded, args, tally, envelope)
        fuzz_seconds = time.perf_counter() - fuzz_started
        cpu = server.cpu_seconds()
    status = print_report(tally, envelope, summary, fuzz_seconds, workdir / "uvicorn.log")
    print(
        f"\nwall time: {time.perf_counter() - started:.0f} s in all "
        f"({fuzz_seconds:.0f} s fuzzing; server CPU {cpu:.0f} s); "
        f"1-min load average {os.getloadavg()[0]:.2f}"
    )
    return status


async def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    print("Backline GraphQL fuzz (schemathesis, GraphQL mode)")
    print("\n".join(report.machine()))
    print(
        f"schemathesis {importlib.metadata.version('schemathesis')}"
        f", hypothesis {hypothesis.__version__}"
        f", hypothesis-graphql {importlib.metadata.version('hypothesis-graphql')}"
        f", graphql-core {graphql.__version__}; 1-min load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="backline-fuzz-") as tmp:
        workdir = Path(tmp)
        name = None
        if args.db == "sqlite":
            url = f"sqlite+aiosqlite:///{workdir / 'backline.db'}"
            print(f"database: SQLite {sqlite3.sqlite_version} file in {workdir}")
        else:
            url, name = await create_postgres_database()
            print(f"database: PostgreSQL {await postgres_version()}, {name} (dropped after)")
        try:
            status = await run(args, url, workdir, started)
        finally:
            if name is not None:
                await drop_postgres_database(name)
    return status


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(parse_args())))
    except KeyboardInterrupt:
        sys.exit("interrupted")
