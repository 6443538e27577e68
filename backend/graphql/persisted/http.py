"""Persisted queries on Strawberry's HTTP view: a mixin for the GraphQL router.

    parse_http_body   also reads ``documentId`` (GET parameter or JSON body member)
    execute_single    resolves the document (resolve.py), then executes it; a refusal
                      is answered as a GraphQL response with only ``errors``, coded like
                      every other error: a mutation over GET is 405, a subscription (the
                      websocket's), an unknown operationName or no query at all 400
    process_result    leaves ``data`` out of such a refusal (nothing was executed)
    headers           GET answers say how long they may be cached, see _cache_headers

The websocket handlers (router.py) call ``resolve_ws_payload`` for each subscribe."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.base import BaseRequestProtocol
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from backend.core.errors import BacklineError, BadRequest, MethodNotAllowed
from backend.graphql.errors import code_error
from backend.graphql.persisted.resolve import PersistedQueries, Resolved

GET_OPERATIONS = frozenset({OperationType.QUERY})
POST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})
WEBSOCKET_ONLY = (
    "Subscriptions run over a websocket: open /graphql with the graphql-transport-ws "
    "protocol (or the legacy graphql-ws) and subscribe there."
)


@dataclass
class PersistedRequestData(GraphQLRequestData):
    document_id: object = None


@dataclass
class RefusedResult(ExecutionResult):
    """Answered before execution: the response carries ``errors`` and no ``data``."""


def refused(error: BacklineError, context: Any) -> RefusedResult:
    request_id = getattr(context, "request_id", "-")
    coded = code_error(GraphQLError(error.message, original_error=error), request_id=request_id)
    return RefusedResult(data=None, errors=[coded])


def caller_persisted_only(context: Any) -> bool:
    """The caller's API token is limited to trusted documents (a bad token raises
    UNAUTHENTICATED here, as it would in any resolver)."""
    return bool(getattr(getattr(context, "caller", None), "persisted_only", False))


class PersistedQueriesView:
    """Mixed into the router (before Strawberry's GraphQLRouter), whose constructor sets
    these from the settings."""

    persisted: PersistedQueries
    http_max_age = 0  # Cache-Control max-age of an anonymous GET answer
    http_private_max_age = 0  # ... and of one to a request with a token

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        # A GET by hash or documentId has no ``query``; it wants JSON, not GraphiQL, even
        # from a client that sends "Accept: */*".
        params = request.query_params
        if params.get("documentId") is not None or params.get("extensions") is not None:
            return False
        return super().should_render_graphql_ide(request)  # type: ignore[misc]

    def parse_json(self, data: str | bytes) -> Any:
        # Strawberry takes any JSON value and then fails on a string or a number (500).
        parsed = super().parse_json(data)  # type: ignore[misc]
        if not isinstance(parsed, dict | list):
            raise HTTPException(
                400, "The body must be a JSON object: {query, variables, operationName}."
            )
        return parsed

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        data = await super().parse_http_body(request)  # type: ignore[misc]
        if not isinstance(data, GraphQLRequestData):
            return data  # a batch (batching is off: Strawberry refused it already)
        document_id = await self._document_id(request)
        if document_id is None:
            return data
        return PersistedRequestData(
            query=data.query,
            variables=data.variables,
            operation_name=data.operation_name,
            extensions=data.extensions,
            protocol=data.protocol,
            document_id=document_id,
        )

    async def _document_id(self, request: AsyncHTTPRequestAdapter) -> object:
        if request.method == "GET":
            return request.query_params.get("documentId")
        content_type, _ = parse_content_type(request.content_type or "")
        if "application/json" not in content_type:
            return None  # multipart uploads name their document in full
        body = await request.get_body()  # Starlette keeps it: no second read
        if b"documentId" not in body:
            return None  # parse the JSON again only for a request that has one
        data = self.parse_json(body)  # type: ignore[attr-defined]
        return data.get("documentId") if isinstance(data, dict) else None

    async def execute_single(
        self,
        request: Any,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Any,
        context: Any,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        is_get = request_adapter.method == "GET"
        try:
            resolved = await self.resolve_request(
                context,
                query=request_data.query,
                extensions=request_data.extensions,
                document_id=getattr(request_data, "document_id", None),
            )
        except BacklineError as error:
            _cache_headers(sub_response, cacheable=False, is_get=is_get)
            return refused(error, context)
        if resolved.query is not None:
            request_data = replace(request_data, query=resolved.query)
        try:
            result = await self.schema.execute(  # type: ignore[attr-defined]
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                # Subscriptions live on the websocket, where the multiplexer serves and
                # charges them; over HTTP they would run as a query and fail half-way.
                allowed_operation_types=GET_OPERATIONS if is_get else POST_OPERATIONS,
                operation_extensions=request_data.extensions,
            )
        except (InvalidOperationTypeError, CannotGetOperationTypeError, MissingQueryError) as error:
            _cache_headers(sub_response, cacheable=False, is_get=is_get)
            return refused(_not_executable(error, sub_response), context)
        _cache_headers(
            sub_response,
            cacheable=not result.errors,
            is_get=is_get,
            private=bool(request_adapter.headers.get("authorization")),
            max_age=self.http_max_age,
            private_max_age=self.http_private_max_age,
        )
        return result

    async def resolve_request(
        self, context: Any, *, query: object, extensions: Any, document_id: object = None
    ) -> Resolved:
        return await self.persisted.resolve(
            query=query,
            extensions=extensions,
            document_id=document_id,
            caller_persisted_only=lambda: caller_persisted_only(context),
        )

    async def resolve_ws_payload(self, context: Any, payload: dict[str, Any]) -> dict[str, Any]:
        """A subscribe (or start) payload with its document filled in; BacklineError when
        the operation must be refused."""
        resolved = await self.persisted.resolve(
            query=payload.get("query"),
            extensions=payload.get("extensions"),
            document_id=payload.get("documentId"),
            caller_persisted_only=lambda: caller_persisted_only(context),
        )
        if resolved.query is None or resolved.query is payload.get("query"):
            return payload
        return {**payload, "query": resolved.query}

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        if isinstance(result, RefusedResult):
            return {"errors": [error.formatted for error in result.errors or []]}
        return await super().process_result(request, result)  # type: ignore[misc]


def _not_executable(error: Exception, sub_response: Any) -> BacklineError:
    """Why a document cannot run over this request, with the HTTP status to say it."""
    if isinstance(error, InvalidOperationTypeError):
        if error.operation_type is OperationType.MUTATION:
            # GraphQL over HTTP: a mutation over GET is 405 (Strawberry says 400).
            sub_response.status_code = 405
            sub_response.headers["Allow"] = "POST"
            return MethodNotAllowed("Mutations cannot be sent with GET; POST them.")
        sub_response.status_code = 400
        return BadRequest(WEBSOCKET_ONLY)
    sub_response.status_code = 400
    if isinstance(error, CannotGetOperationTypeError):
        if error.operation_name is None:
            return BadRequest("The document holds no operation to run, only fragments.")
        return BadRequest(f"The document has no operation named {error.operation_name!r}.")
    return BadRequest(
        "The request has no GraphQL query: send `query`, or a persisted query's "
        "sha256Hash in extensions or a documentId."
    )


def _cache_headers(
    sub_response: Any,
    *,
    cacheable: bool,
    is_get: bool,
    private: bool = False,
    max_age: int = 0,
    private_max_age: int = 0,
) -> None:
    """Only GET answers are cacheable at all (POST responses are not, by HTTP's rules).

    - an answer with errors: ``no-store``. Above all PersistedQueryNotFound: a cache that
      kept it would hide the document the client registers next;
    - no Authorization header: ``public, max-age=N``; the answer depends on the URL alone
      (the caller is read from that header only, never from cookies), so a CDN may share
      it;
    - with one: ``private, max-age=M`` (0 by default): the browser's own cache at most,
      and briefly, since a refetch after a mutation must not see the answer from before.

    Every GET answer says ``Vary: Authorization``, the anonymous ones too: a shared cache
    must not hand a stored anonymous answer to a request that carries a token."""
    if not is_get:
        return
    if not cacheable:
        sub_response.headers["Cache-Control"] = "no-store"
    elif private:
        sub_response.headers["Cache-Control"] = f"private, max-age={private_max_age}"
    else:
        sub_response.headers["Cache-Control"] = f"public, max-age={max_age}"
    sub_response.headers["Vary"] = "Authorization"
