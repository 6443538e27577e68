"""The limits as a Strawberry extension, and the one object per app that holds them.

``LimitsExtension`` takes over the validation step (as Strawberry's own ValidationCache
does) so that, before anything runs and for queries, mutations and subscriptions alike,
it can do in order: the document limits (cheap, and bounded by the token limit), the
schema's validation rules (the costlier part), then the caller's budget (an await on
Redis, which a validation rule could not do). A refused document is charged one point.
``get_results`` puts the budget on every response as ``extensions.rateLimit``.

The schema gets it as a factory, so every request has its own instance (the charge of
one request must never be read by another)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    get_operation_ast,
)
from graphql.validation import MaxIntrospectionDepthRule
from starlette.responses import Response
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from backend.core.errors import RateLimited
from backend.core.settings import Settings
from backend.graphql.limits.cost import EMPTY, measure_operation
from backend.graphql.limits.rate import Charge, Store, caller_key, create_store
from backend.graphql.limits.rules import DocumentLimits, points, refusals


class Limits:
    """One app's limits: the document limits, and the store of the callers' budgets."""

    def __init__(self, settings: Settings, *, store: Store | None = None) -> None:
        self.settings = settings
        self.documents = DocumentLimits.from_settings(settings)
        self.store = store or create_store(settings)
        # Whether a document's text is one of our trusted documents (then it may nest
        # deeper). Asked per operation, not read off the context: a websocket's context
        # serves many operations. The app sets it from its persisted queries.
        self.is_trusted: Callable[[str], bool] = lambda _document: False

    def check(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        *,
        trusted: bool,
    ) -> tuple[int, list[GraphQLError]]:
        """(the operation's cost, the errors refusing it: none when it may run)."""
        operations = _operations(document, operation_name)
        measured = EMPTY
        for operation in operations:
            measured += measure_operation(schema, document, operation, variables)
        node = operations[0] if len(operations) == 1 else None
        return measured.cost, refusals(measured, self.documents, trusted=trusted, node=node)

    async def charge(self, context: Any, cost: int) -> Charge | None:
        """Charge the caller for a request of this cost; None when its budget is off."""
        key, signed_in = caller_key(context)
        settings = self.settings
        limit = settings.rate_limit_points if signed_in else settings.rate_limit_anonymous_points
        if not limit:
            return None
        return await self.store.charge(key, points(cost), limit, settings.rate_limit_window_seconds)

    async def admit_subscription(
        self,
        context: Any,
        schema: GraphQLSchema,
        query: str,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
    ) -> bool:
        """For the multiplexer, which runs subscriptions past the extensions: within the
        limits and the budget (then charged, once), or not (then not charged: the
        ordinary path refuses it and says why)."""
        cost, errors = self.check(
            schema, document, operation_name, variables, trusted=self.is_trusted(query)
        )
        if errors:
            return False
        charge = await self.charge(context, cost)
        return charge is None or charge.allowed

    async def aclose(self) -> None:
        await self.store.aclose()


class LimitsExtension(SchemaExtension):
    def __init__(self, *, limits: Limits) -> None:
        self.limits = limits
        self.charged = False
        self.outcome: Charge | None = None

    async def on_validate(self) -> AsyncIterator[None]:
        execution = self.execution_context
        document = execution.graphql_document
        assert document is not None  # validation follows a successful parse
        schema = execution.schema._schema
        context = execution.context
        cost, errors = self.limits.check(
            schema,
            document,
            execution.operation_name,
            execution.variables,
            trusted=execution.query is not None and self.limits.is_trusted(execution.query),
        )
        if not errors:
            errors = execution.pre_execution_errors  # an earlier extension may have validated
            if errors is None:
                rules = (*execution.validation_rules, MaxIntrospectionDepthRule)
                errors = validate_document(schema, document, rules)
        if not errors:
            self.charged = True
            self.outcome = await self.limits.charge(context, cost)
            if self.outcome is not None and not self.outcome.allowed:
                errors = [rate_limited(self.outcome)]
                _refuse_http(context, self.outcome)
        # [] means validated and fine: Strawberry then runs the operation.
        execution.pre_execution_errors = errors
        yield

    async def get_results(self) -> dict[str, Any]:
        if not self.charged:  # refused before (or by) validation: one point
            self.charged = True
            self.outcome = await self.limits.charge(self.execution_context.context, 0)
        if self.outcome is None:
            return {}
        _report_http(self.execution_context.context, self.outcome)
        return {"rateLimit": self.outcome.report()}


def rate_limited(outcome: Charge) -> GraphQLError:
    error = RateLimited(
        f"The rate limit of {outcome.limit} points per window is spent: this request "
        f"costs {outcome.cost} and {outcome.remaining} remain. The budget is refilled at "
        f"{outcome.reset_at_iso}, in {outcome.retry_after} s.",
        retryAfter=outcome.retry_after,
        resetAt=outcome.reset_at_iso,
        limit=outcome.limit,
        remaining=outcome.remaining,
        cost=outcome.cost,
    )
    return GraphQLError(error.message, original_error=error, extensions=error.extensions)


def _operations(document: DocumentNode, name: str | None) -> list[OperationDefinitionNode]:
    operation = get_operation_ast(document, name)
    if operation is not None:
        return [operation]
    # Not one operation to tell (validation or execution refuses that): measure them all.
    return [
        definition
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    ]


def _http_response(context: Any) -> Response | None:
    response = getattr(context, "response", None)  # a websocket's context has the socket
    return response if isinstance(response, Response) else None


def _report_http(context: Any, outcome: Charge) -> None:
    response = _http_response(context)
    if response is not None:  # GitHub's headers, for clients that read those
        response.headers["X-RateLimit-Limit"] = str(outcome.limit)
        response.headers["X-RateLimit-Remaining"] = str(outcome.remaining)
        response.headers["X-RateLimit-Reset"] = str(int(outcome.reset_at))


def _refuse_http(context: Any, outcome: Charge) -> None:
    response = _http_response(context)
    if response is not None:
        response.status_code = 429
        response.headers["Retry-After"] = str(outcome.retry_after)
