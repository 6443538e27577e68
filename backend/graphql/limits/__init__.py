"""Abuse limits: how big a document may be (depth, aliases, directives, tokens, cost), how
much a caller may ask per hour (rate.py), how large a request body may be (body.py).

Anchors: graphql-armor's defaults (depth 6, aliases 15, directives 50, tokens 1,000,
cost 5,000) and GitHub's GraphQL API (a node limit multiplying connection sizes; a budget
of 5,000 points an hour, one point per 100 nodes)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from strawberry.extensions import DisableIntrospection, MaxTokensLimiter, SchemaExtension

from backend.graphql.limits.body import BodySizeLimit
from backend.graphql.limits.extension import Limits, LimitsExtension

ExtensionFactory = type[SchemaExtension] | Callable[[], SchemaExtension]

__all__ = ["BodySizeLimit", "ExtensionFactory", "Limits", "LimitsExtension", "schema_extensions"]


def schema_extensions(limits: Limits, *, production: bool) -> list[ExtensionFactory]:
    """The schema's limit extensions: classes and factories only, never instances, so each
    request builds its own (an instance would be shared by concurrent requests)."""
    extensions: list[ExtensionFactory] = [
        # Read by the parser itself: it stops at the first token over the limit.
        partial(MaxTokensLimiter, max_token_count=limits.documents.tokens),
    ]
    if production:
        # The schema is the frontend's to know; strangers get no map of it.
        extensions.append(DisableIntrospection)
    # Last: it validates, with the rules the ones above added.
    extensions.append(partial(LimitsExtension, limits=limits))
    return extensions
