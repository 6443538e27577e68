"""The GraphQL endpoint: HTTP (POST, GET, GraphiQL) and websockets (graphql-transport-ws
and the legacy graphql-ws), with the token checked at connection_init.

Both websocket handlers first offer each subscription to the multiplexer
(backend/graphql/multiplex.py), which serves many subscribers of one selection with one
execution per event; what it does not take runs through Strawberry as usual. A taken
subscription keeps Strawberry's own bookkeeping (its task, its id, stop and complete):
only the per-event work moves out of the per-subscriber task.

Persisted queries (backend/graphql/persisted/): the HTTP side is a mixin of the router; on
both websocket protocols each subscribe is resolved the same way first (a hash or
documentId becomes its document; persisted-only callers must use trusted documents), and
a refusal is an error message for that operation only: the socket stays open."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from functools import cached_property
from typing import Any

from cross_web import HTTPException
from fastapi import Request, WebSocket
from fastapi.responses import JSONResponse
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    CompleteMessage,
    ConnectionInitMessage,
    ErrorMessage,
    StartMessage,
)
from strawberry.types.unset import UNSET

from backend.bands.live import BandEventsSource
from backend.core.asgi import error_entry
from backend.core.errors import (
    BacklineError,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    Unauthenticated,
)
from backend.graphql.context import Context
from backend.graphql.multiplex import Multiplexer
from backend.graphql.persisted.http import PersistedQueriesView, refused
from backend.graphql.persisted.resolve import PersistedQueries
from backend.graphql.subscribers import Subscriber, data_frame_prefix, next_frame_prefix

logger = logging.getLogger("backline.graphql")


def _subscriber(handler: Any, prefix: str) -> Subscriber | None:
    """A subscriber writing straight to the handler's socket; None where that socket is
    not Starlette's (frames are written as text, bypassing Strawberry's JSON encoding)."""
    socket = getattr(handler.websocket, "ws", None)
    if socket is None or not hasattr(socket, "send_text"):
        return None
    return Subscriber(context=handler.context, send_text=socket.send_text, prefix=prefix)


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, with multiplexed subscriptions."""

    view: BacklineGraphQLRouter

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        payload = message.get("payload")
        # Not acknowledged or a duplicate id: Strawberry closes the socket, as it should.
        if (
            self.connection_acknowledged
            and isinstance(payload, dict)
            and message.get("id") not in self.operations
        ):
            try:
                payload = await self.view.resolve_ws_payload(self.context, payload)
            except BacklineError as error:
                formatted = _formatted(error, self.context)
                await self.send_message(
                    {"id": message["id"], "type": "error", "payload": [formatted]}
                )
                return
            message = {**message, "payload": payload}  # type: ignore[typeddict-item]
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        subscriber = _subscriber(self, next_frame_prefix(operation.id))
        if subscriber is None:
            await super().run_operation(operation)
            return
        try:
            taken = await self.view.multiplexer.serve(
                self.context,
                operation.query,
                operation.operation_name,
                operation.variables,
                subscriber,
            )
        except asyncio.CancelledError:  # the client completed it, or left
            subscriber.discard()
            raise
        except Exception as error:  # as Strawberry's own run_operation does
            subscriber.discard()
            await self.handle_task_exception(error)
            with suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise
        if not taken:
            await super().run_operation(operation)
            return
        await subscriber.flush()  # the last frames leave before complete
        await operation.send_operation_message({"id": operation.id, "type": "complete"})


class LegacyGraphQLWSHandler(BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol under the rules graphql-transport-ws has built in:
    no connection_init within the router's timeout closes the socket with 4408, a bad
    token with 4403 (Strawberry closes these with 1011 and never times out)."""

    init_received = False

    async def handle_start(self, message: StartMessage) -> None:
        payload = message.get("payload")
        if self.connection_acknowledged and isinstance(payload, dict):
            view: BacklineGraphQLRouter = self.view  # type: ignore[assignment]
            try:
                payload = await view.resolve_ws_payload(self.context, payload)  # type: ignore[arg-type]
            except BacklineError as error:
                formatted = _formatted(error, self.context)
                await self.send_message(
                    ErrorMessage(type="error", id=message.get("id", ""), payload=formatted)
                )
                return
            message = {**message, "payload": payload}  # type: ignore[typeddict-item]
        await super().handle_start(message)

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

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        subscriber = _subscriber(self, data_frame_prefix(operation_id))
        if subscriber is None:
            await super().handle_async_results(operation_id, query, operation_name, variables)
            return
        view: BacklineGraphQLRouter = self.view  # type: ignore[assignment]
        try:
            taken = await view.multiplexer.serve(
                self.context, query, operation_name, variables, subscriber
            )
            if taken:
                await subscriber.flush()
        except asyncio.CancelledError:  # stop: Strawberry answers it with complete
            subscriber.discard()
            await self.send_message(CompleteMessage(type="complete", id=operation_id))
            self._forget(operation_id)
            return
        if not taken:
            await super().handle_async_results(operation_id, query, operation_name, variables)
            return
        await self.send_message(CompleteMessage(type="complete", id=operation_id))
        self._forget(operation_id)

    def _forget(self, operation_id: str) -> None:
        # What Strawberry's handle_async_results does on the way out: the id is free again.
        self.subscriptions.pop(operation_id, None)
        self.tasks.pop(operation_id, None)


def _formatted(error: BacklineError, context: Context) -> Any:
    errors = refused(error, context).errors or []
    return errors[0].formatted


def _refusal(
    status: int, error: BacklineError, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A request refused before execution: ``errors`` only (nothing ran, so no ``data``)."""
    return JSONResponse({"errors": [error_entry(error)]}, status_code=status, headers=headers)


async def _other_method(request: Request) -> JSONResponse:
    refusal = MethodNotAllowed(f"GraphQL is sent with GET or POST, not {request.method}.")
    return _refusal(405, refusal, {"Allow": "GET, POST"})


class BacklineGraphQLRouter(PersistedQueriesView, GraphQLRouter):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyGraphQLWSHandler

    def __init__(
        self,
        *args: Any,
        persisted: PersistedQueries,
        http_max_age: int = 0,
        http_private_max_age: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # Other methods get a coded refusal too, not FastAPI's bare {"detail": ...}.
        self.add_api_route(
            kwargs.get("path", ""),
            _other_method,
            methods=["PUT", "PATCH", "DELETE"],
            include_in_schema=False,
        )
        self.persisted = persisted
        self.http_max_age = http_max_age
        self.http_private_max_age = http_private_max_age

    async def run(
        self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET
    ) -> Any:
        """Strawberry's answer to a request it cannot read (not JSON, no query, variables
        that are not an object, a batch, another method) is bare text; ours is a GraphQL
        error with a code, like every other refusal."""
        try:
            return await super().run(request, context=context, root_value=root_value)
        except HTTPException as error:
            if isinstance(request, WebSocket):
                raise
            refusal = MethodNotAllowed(error.reason) if error.status_code == 405 else None
            if error.status_code == 404:  # GraphiQL asked for, in production mode
                refusal = NotFound("page: the GraphQL IDE is off on this server")
            refusal = refusal or BadRequest(error.reason)
            headers = {"Allow": "GET, POST"} if error.status_code == 405 else None
            return _refusal(error.status_code, refusal, headers)

    @cached_property
    def multiplexer(self) -> Multiplexer:
        return Multiplexer(self.schema, [BandEventsSource()], encode=self.encode_json_string)

    async def on_ws_connect(self, context: Context) -> None:
        """A bad or expired token closes the socket (4403); none means signed out, and
        each subscription then says UNAUTHENTICATED itself."""
        await context.authenticate()  # the token came in connection_init's payload
        try:
            _ = context.viewer_id
        except Unauthenticated as error:
            raise ConnectionRejectionError({"message": error.message}) from error
