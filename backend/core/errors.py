"""Domain errors. Services raise these; the GraphQL layer turns each into an error
with ``extensions.code``. Nothing here knows about GraphQL."""

from __future__ import annotations

from typing import Any


class BacklineError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    @property
    def extensions(self) -> dict[str, Any]:
        extensions: dict[str, Any] = {"code": self.code, **self.details}
        if self.field:
            extensions["field"] = self.field
        return extensions


class Unauthenticated(BacklineError):
    code = "UNAUTHENTICATED"

    def __init__(self, message: str = "Sign in to do this.", **details: Any) -> None:
        super().__init__(message, **details)


class Forbidden(BacklineError):
    code = "FORBIDDEN"


class NotFound(BacklineError):
    code = "NOT_FOUND"

    def __init__(self, what: str = "object", **details: Any) -> None:
        super().__init__(f"No such {what}.", **details)


class BadUserInput(BacklineError):
    code = "BAD_USER_INPUT"


class AlreadyExists(BadUserInput):
    """A unique value that is taken; still BAD_USER_INPUT, with the field named."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field, reason="ALREADY_EXISTS")


class ServiceUnavailable(BacklineError):
    code = "SERVICE_UNAVAILABLE"


# Persisted queries (backend/graphql/persisted/). The not-found error's message is the
# literal text Apollo Client and urql look for before sending the full document.
class PersistedQueryNotFound(BacklineError):
    code = "PERSISTED_QUERY_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("PersistedQueryNotFound")


class PersistedQueryHashMismatch(BacklineError):
    code = "PERSISTED_QUERY_HASH_MISMATCH"


class PersistedQueryRequired(BacklineError):
    code = "PERSISTED_QUERY_REQUIRED"


class BadRequest(BacklineError):
    """A request that is not a GraphQL request at all: a body that is not JSON, no query,
    an operationName the document lacks, a subscription sent over HTTP."""

    code = "BAD_REQUEST"


class PersistedQueryBadRequest(BadRequest):
    """A persisted query request that is not well-formed (an unknown version, a malformed
    hash or document id); ``reason`` says which rule it broke."""


class MethodNotAllowed(BacklineError):
    """A mutation sent with GET (answered with HTTP 405: GET must stay safe to repeat)."""

    code = "METHOD_NOT_ALLOWED"


# Abuse limits (backend/graphql/limits/): a document too big to run, a caller whose
# budget is spent, a request body over the size allowed.
class QueryTooComplex(BacklineError):
    """``limit`` names the limit (depth, aliases, directives, tokens, cost); ``maximum``
    and ``actual`` give both sides."""

    code = "QUERY_TOO_COMPLEX"


class RateLimited(BacklineError):
    """``retryAfter``: seconds until the budget is refilled (also the Retry-After header)."""

    code = "RATE_LIMITED"


class RequestTooLarge(BacklineError):
    code = "REQUEST_TOO_LARGE"
