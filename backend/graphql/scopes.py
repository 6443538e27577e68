"""An API token does only what its scopes allow: every token reads (queries and
subscriptions); mutations need the 'write' scope. A person's own login has both."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from backend.accounts.api_tokens import WRITE
from backend.core.errors import Unauthenticated


class TokenScopes(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        if execution.operation_type == OperationType.MUTATION:
            try:
                caller = getattr(execution.context, "caller", None)
            except Unauthenticated:
                caller = None  # a bad token: the fields that need a viewer say so
            if caller is not None and WRITE not in caller.scopes:
                # A result set before execution: Strawberry then executes nothing.
                execution.result = ExecutionResult(
                    data=None,
                    errors=[
                        GraphQLError(
                            "This API token is read-only: it lacks the 'write' scope that "
                            "changes need.",
                            extensions={"code": "FORBIDDEN", "scope": WRITE},
                        )
                    ],
                )
        yield
