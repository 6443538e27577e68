"""The document limits and the errors that refuse a document over them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from graphql import GraphQLError, Node

from backend.core.errors import QueryTooComplex
from backend.core.settings import Settings
from backend.graphql.limits.cost import Measure

# graphql-core's words when the parser stops at Strawberry's MaxTokensLimiter.
_TOKENS = re.compile(
    r"^Syntax Error: Document contains more than (\d+) tokens\. Parsing aborted\.$"
)


_COST_HINT = (
    " Cost counts the objects the answer can hold; a connection's `first` (20 when"
    " absent) multiplies everything under it: ask for smaller pages."
)


@dataclass(frozen=True)
class DocumentLimits:
    depth: int
    trusted_depth: int
    aliases: int
    directives: int
    tokens: int
    cost: int

    @classmethod
    def from_settings(cls, settings: Settings) -> DocumentLimits:
        return cls(
            depth=settings.max_query_depth,
            trusted_depth=max(settings.max_trusted_query_depth, settings.max_query_depth),
            aliases=settings.max_query_aliases,
            directives=settings.max_query_directives,
            tokens=settings.max_query_tokens,
            cost=settings.max_query_cost,
        )


def refusals(
    measured: Measure, limits: DocumentLimits, *, trusted: bool, node: Node | None = None
) -> list[GraphQLError]:
    """One error per limit the operation is over; none when it may run."""
    # Trusted documents are our own clients' operations, read from the manifest built
    # with them: their depth is what the pages need (Relay connections add a `nodes` or
    # `edges { node }` level per list), not what a stranger might try. Every other limit
    # holds for them too.
    depth = limits.trusted_depth if trusted else limits.depth
    checks = (
        ("depth", depth, measured.depth, f"is nested {measured.depth} levels deep"),
        ("aliases", limits.aliases, measured.aliases, f"has {measured.aliases} aliases"),
        (
            "directives",
            limits.directives,
            measured.directives,
            f"has {measured.directives} directives",
        ),
        ("cost", limits.cost, measured.cost, f"costs {measured.cost}"),
    )
    return [
        too_complex(
            f"The operation {what}; the limit is {maximum}.{_COST_HINT if limit == 'cost' else ''}",
            limit,
            maximum,
            actual,
            node,
        )
        for limit, maximum, actual, what in checks
        if actual > maximum
    ]


def too_complex(
    message: str, limit: str, maximum: int, actual: int | None, node: Node | None = None
) -> GraphQLError:
    details: dict[str, object] = {"limit": limit, "maximum": maximum}
    if actual is not None:
        details["actual"] = actual
    error = QueryTooComplex(message, **details)
    return GraphQLError(message, nodes=node, original_error=error, extensions=error.extensions)


def token_refusal(error: GraphQLError) -> GraphQLError | None:
    """The coded form of the parser's "more than N tokens" syntax error, else None."""
    match = _TOKENS.match(error.message)
    if match is None:
        return None
    maximum = int(match.group(1))
    return too_complex(
        f"The document has more than {maximum} tokens; the limit is {maximum}.",
        "tokens",
        maximum,
        None,
    )


def points(cost: int) -> int:
    """What a request costs of the caller's budget: GitHub's rule, one point per 100
    objects, at least one (a request that reads nothing still took a round trip)."""
    return max(1, math.ceil(cost / 100))
