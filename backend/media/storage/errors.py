"""What storage raises. All are domain errors (``BacklineError``), so the GraphQL layer
reports them with a code; a missing object is ``NotFound("stored file")``."""

from __future__ import annotations

from backend.core.errors import BadUserInput, ServiceUnavailable


def format_bytes(size: int) -> str:
    """``2147483648`` → ``"2 GiB"``; ``1536`` → ``"1.5 KiB"``."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    if unit == "bytes":
        return f"{size} bytes"
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


class TooLarge(BadUserInput):
    """More bytes than allowed arrived; nothing of them is kept."""

    def __init__(self, *, max_bytes: int) -> None:
        super().__init__(
            f"The file is too large: at most {format_bytes(max_bytes)} can be uploaded.",
            field="file",
            reason="TOO_LARGE",
            maxBytes=max_bytes,
        )


class InvalidKey(BadUserInput):
    """A key that could name something outside the storage root, or is malformed."""

    def __init__(self, key: object, why: str) -> None:
        super().__init__(f"Invalid storage key {str(key)[:80]!r}: {why}.", field="key")


class RangeNotSatisfiable(BadUserInput):
    """A byte range that starts past the end of the object, or is no range (HTTP 416)."""

    def __init__(self, *, start: int, end: int | None, size: int | None) -> None:
        shown = f"{start}-{'' if end is None else end}"
        if size is None:
            message = f"The byte range {shown} is not a valid range."
        else:
            message = f"The byte range {shown} is outside the file ({size} bytes)."
        details = {} if size is None else {"size": size}
        super().__init__(message, field="range", reason="RANGE_NOT_SATISFIABLE", **details)


class NotSupported(BadUserInput):
    """The configured backend cannot do this (e.g. direct multipart uploads on local disk)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="NOT_SUPPORTED")


class StorageUnavailable(ServiceUnavailable):
    """The S3 endpoint cannot be reached or refused our credentials or bucket."""
