"""A small GraphQL client for tests, talking HTTP to the real app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Result:
    status: int
    data: dict[str, Any] | None
    errors: list[dict[str, Any]]

    @property
    def codes(self) -> list[str | None]:
        return [error.get("extensions", {}).get("code") for error in self.errors]

    def ok(self) -> dict[str, Any]:
        assert not self.errors, self.errors
        assert self.data is not None
        return self.data


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
) -> Result:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    body = response.json()
    return Result(response.status_code, body.get("data"), body.get("errors") or [])


REGISTER = """
mutation Register($input: RegisterInput!) {
  register(input: $input) { accessToken refreshToken expiresAt user { id handle email } }
}
"""


async def register(client: httpx.AsyncClient, handle: str) -> tuple[str, str]:
    """A new user: (access token, global user id)."""
    result = await gql(
        client,
        REGISTER,
        {
            "input": {
                "email": f"{handle}@example.org",
                "password": "correct horse",
                "handle": handle,
            }
        },
    )
    payload = result.ok()["register"]
    return payload["accessToken"], payload["user"]["id"]
