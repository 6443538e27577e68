"""Many members at once: concurrent writes and reads all succeed and all land, once."""

from __future__ import annotations

import asyncio
from datetime import date

from backend.graphql.relay import to_global_id
from tests.factories import add_take
from tests.graphql_client import gql, register

ADD = """mutation($v: ID!, $b: String!) { addComment(input: {versionId: $v, body: $b}) { id } }"""
REACT = "mutation($t: ID!) { react(targetId: $t, kind: FIRE) { total } }"
COUNT = "query($v: ID!) { node(id: $v) { ... on TrackVersion { comments { totalCount } reactions { total } } } }"


async def test_concurrent_comments_reactions_and_reads(client, session_factory):
    admin, _ = await register(client, "lead")
    band_id = (
        await gql(client, 'mutation { createBand(input: {name: "Crowd"}) { id } }', token=admin)
    ).ok()["createBand"]["id"]
    invite = (
        await gql(
            client, "mutation($b: ID!) { createInvite(bandId: $b) }", {"b": band_id}, token=admin
        )
    ).ok()["createInvite"]
    members = [admin]
    for index in range(4):
        token, _ = await register(client, f"member{index}")
        await gql(
            client,
            "mutation($t: String!) { acceptInvite(token: $t) { id } }",
            {"t": invite},
            token=token,
        )
        members.append(token)
    version = await add_take(
        session_factory, band_id=band_id, title="Live", session_date=date(2024, 2, 2)
    )
    version_id = to_global_id("TrackVersion", version.id)

    calls = []
    for round_ in range(6):
        for token in members:
            calls.append(gql(client, ADD, {"v": version_id, "b": f"note {round_}"}, token=token))
            calls.append(gql(client, REACT, {"t": version_id}, token=token))
            calls.append(gql(client, COUNT, {"v": version_id}, token=token))
    results = await asyncio.gather(*calls)
    assert [r.errors for r in results if r.errors] == []

    final = (await gql(client, COUNT, {"v": version_id}, token=admin)).ok()["node"]
    assert final["comments"]["totalCount"] == 6 * len(members)
    # Each member reacted FIRE six times, concurrently: one reaction each.
    assert final["reactions"]["total"] == len(members)
