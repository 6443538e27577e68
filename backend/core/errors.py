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
