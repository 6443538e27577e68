"""Every error leaves with ``extensions.code``; unexpected ones are logged and masked."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from backend.core.errors import BacklineError
from backend.graphql.limits.rules import token_refusal

logger = logging.getLogger("backline.graphql")

# graphql-core's hints, in every form it writes them ("Did you mean 'a', 'b' or 'c'?",
# "Did you mean the enum value 'X'?"): they spell out names of the schema.
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def _coded(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


def code_error(
    error: GraphQLError, *, request_id: str, hide_suggestions: bool = False
) -> GraphQLError:
    coded = _code(error, request_id=request_id)
    if hide_suggestions and "Did you mean" in coded.message:
        # Production: no map of the schema for whoever guesses field names.
        return _coded(coded, _SUGGESTION.sub("", coded.message), dict(coded.extensions or {}))
    return coded


def _code(error: GraphQLError, *, request_id: str) -> GraphQLError:
    original = error.original_error
    if isinstance(original, BacklineError):
        return _coded(error, original.message, original.extensions)
    if isinstance(original, GraphQLError) and original.extensions.get("code"):
        return _coded(error, original.message, dict(original.extensions))
    if error.extensions and error.extensions.get("code"):
        return error
    # Refused before execution (no path): the document did not parse or validate, or a
    # variable did not fit its type. graphql-core wraps the reason of the last kind as
    # ``original_error``; its message is written for the client either way.
    if original is None or (isinstance(original, GraphQLError) and not error.path):
        if (too_many_tokens := token_refusal(error)) is not None:
            return too_many_tokens
        if error.message.startswith("Syntax Error"):
            code = "GRAPHQL_PARSE_FAILED"
        elif error.message.startswith("Variable "):
            code = "BAD_USER_INPUT"
        else:
            code = "GRAPHQL_VALIDATION_FAILED"
        return _coded(error, error.message, {"code": code})
    logger.error(
        "unexpected error in %s (request %s)",
        ".".join(map(str, error.path or [])) or "operation",
        request_id,
        exc_info=original,
    )
    return _coded(
        error,
        f"Something went wrong on the server; quote request id {request_id} when reporting it.",
        {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    )


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if not errors:
            return
        context = self.execution_context.context
        request_id = getattr(context, "request_id", "-")
        settings = getattr(context, "settings", None)
        hide = bool(settings is not None and settings.is_production)
        result.errors = [  # type: ignore[union-attr]
            code_error(error, request_id=request_id, hide_suggestions=hide) for error in errors
        ]
