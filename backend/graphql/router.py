"""The GraphQL endpoint: HTTP (POST, GET, GraphiQL) and websockets (graphql-transport-ws
and the legacy graphql-ws), with the token checked at connection_init."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ConnectionInitMessage

from backend.core.errors import Unauthenticated
from backend.graphql.context import Context

logger = logging.getLogger("backline.graphql")


class LegacyGraphQLWSHandler(BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol under the rules graphql-transport-ws has built in:
    no connection_init within the router's timeout closes the socket with 4408, a bad
    token with 4403 (Strawberry closes these with 1011 and never times out)."""

    init_received = False

    async def handle(self) -> None:
        timer = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            timer.cancel()
            with suppress(asyncio.CancelledError):
                await timer

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if self.init_received:
            return
        try:
            await self.websocket.close(code=4408, reason="Connection initialisation timeout")
        except Exception:  # the client left meanwhile; nothing to close
            logger.debug("websocket gone before its init timeout", exc_info=True)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        self.init_received = True
        payload = message.get("payload")
        if payload is not None and not isinstance(payload, dict):
            await self.send_message({"type": "connection_error"})
            await self.websocket.close(code=4400, reason="Invalid connection init payload")
            return
        self.context.connection_params = payload
        try:
            await self.view.on_ws_connect(self.context)
        except ConnectionRejectionError as error:
            await self.send_message({"type": "connection_error", "payload": error.payload})
            await self.websocket.close(code=4403, reason="Forbidden")
            return
        await self.send_message({"type": "connection_ack"})
        self.connection_acknowledged = True
        if self.keep_alive:
            self.keep_alive_task = asyncio.create_task(self.handle_keep_alive())


class BacklineGraphQLRouter(GraphQLRouter):
    graphql_ws_handler_class = LegacyGraphQLWSHandler

    async def on_ws_connect(self, context: Context) -> None:
        """A bad or expired token closes the socket (4403); none means signed out, and
        each subscription then says UNAUTHENTICATED itself."""
        try:
            _ = context.viewer_id
        except Unauthenticated as error:
            raise ConnectionRejectionError({"message": error.message}) from error
