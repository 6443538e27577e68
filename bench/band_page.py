"""The two ways of asking for the band page (the GraphQL ``BandPage`` query and the
hand-written ``GET /bench/band-page``), and the check that they answer the same data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

BAND_PAGE = """
query BandPage($id: ID!) {
  band(id: $id) {
    name
    tracks(first: 50, orderBy: TITLE) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes {
        id title status bpm key commentCount
        reactions { total counts { kind count viewerReacted } }
        latestVersion { id label durationMs status analysis { bpm key scale loudnessLufs } session { id date } }
        versions(first: 3) { nodes { id number label durationMs session { date } } }
        sessions { id date }
      }
    }
  }
}
"""  # noqa: E501 -- kept as the brief and the frontend write it


@dataclass
class Endpoint:
    name: str
    send: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]

    @staticmethod
    def failed(response: httpx.Response) -> bool:
        # A substring test, not json.loads: the client shares the CPUs with the server.
        return response.status_code != 200 or b'"errors"' in response.content


def endpoints(band_gid: str) -> list[Endpoint]:
    """GraphQL first, then the hand-written baseline (tables list them in this order)."""

    async def graphql(client: httpx.AsyncClient) -> httpx.Response:
        body = {"query": BAND_PAGE, "variables": {"id": band_gid}, "operationName": "BandPage"}
        return await client.post("/graphql", json=body)

    async def handwritten(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get("/bench/band-page", params={"band": band_gid})

    return [Endpoint("GraphQL", graphql), Endpoint("hand-written", handwritten)]


def _first_difference(left: Any, right: Any, path: str = "data") -> str | None:
    # Numbers compare by value: one side may carry 120 where the other has 120.0.
    if type(left) is not type(right) and not (
        isinstance(left, int | float) and isinstance(right, int | float)
    ):
        return f"{path}: {left!r} != {right!r}"
    if isinstance(left, dict):
        for key in sorted(set(left) | set(right)):
            if key not in left or key not in right:
                return f"{path}.{key}: only in {'GraphQL' if key in left else 'hand-written'}"
            found = _first_difference(left[key], right[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(left, list):
        if len(left) != len(right):
            return f"{path}: {len(left)} items != {len(right)}"
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            found = _first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return None
    return None if left == right else f"{path}: {left!r} != {right!r}"


async def verify(client: httpx.AsyncClient, band_gid: str) -> str:
    """Once, over the real server: GraphQL answers without errors with 50 tracks, and the
    hand-written endpoint returns the same tracks in the same order (and the same data)."""
    graphql, handwritten = endpoints(band_gid)
    answer = (await graphql.send(client)).json()
    if answer.get("errors"):
        return f"MISMATCH: GraphQL errors: {answer['errors']}"
    nodes = answer["data"]["band"]["tracks"]["nodes"]
    response = await handwritten.send(client)
    if response.status_code != 200:
        return f"MISMATCH: hand-written endpoint answered {response.status_code}: {response.text}"
    baseline = response.json()
    theirs = [(n["id"], n["title"]) for n in baseline["data"]["band"]["tracks"]["nodes"]]
    ours = [(n["id"], n["title"]) for n in nodes]
    if len(nodes) != 50:
        return f"MISMATCH: GraphQL returned {len(nodes)} tracks, not 50"
    if ours != theirs:
        return f"MISMATCH: track ids/titles differ: GraphQL {ours[:3]}... vs {theirs[:3]}..."
    difference = _first_difference(answer["data"], baseline["data"])
    if difference:
        return f"ids/titles match, but the data differs at {difference}"
    return "ok: no errors, 50 tracks, hand-written JSON identical to GraphQL's"
