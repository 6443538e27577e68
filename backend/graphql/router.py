"""The GraphQL endpoint: HTTP (POST, GET, GraphiQL) and websockets (graphql-transport-ws
and the legacy graphql-ws), with the token checked at connection_init."""

from __future__ import annotations

from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter

from backend.core.errors import Unauthenticated
from backend.graphql.context import Context


class BacklineGraphQLRouter(GraphQLRouter):
    async def on_ws_connect(self, context: Context) -> None:
        """A bad or expired token closes the socket (4403); none means signed out, and
        each subscription then says UNAUTHENTICATED itself."""
        try:
            _ = context.viewer_id
        except Unauthenticated as error:
            raise ConnectionRejectionError({"message": error.message}) from error
