"""Where a sign-in may send the browser back to: only URLs under a configured prefix,
so the callback is never an open redirect (a code sent to a stranger's page)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from backend.core.settings import Settings


def allowed_prefixes(settings: Settings, *, base_url: str) -> list[str]:
    """BACKLINE_OAUTH_REDIRECTS, else the API's own origin (an SPA served beside it)."""
    configured = [part.strip() for part in settings.oauth_redirects.split(",") if part.strip()]
    return configured or [base_url.rstrip("/") + "/"]


def is_allowed(url: str, prefixes: list[str]) -> bool:
    """Whether ``url`` lies under one of ``prefixes``: same scheme, host and port, and a
    path below the prefix's path. A plain string prefix would let
    ``https://app.example.org.evil.test/`` pass for ``https://app.example.org``."""
    candidate = _split(url)
    if candidate is None:
        return False
    return any(_under(candidate, prefix) for prefix in prefixes)


def default_redirect(prefixes: list[str]) -> str:
    """Where a login started without ``redirect`` returns: the first allowed place."""
    return prefixes[0]


def with_params(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` added to its query (its own parameters kept)."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _split(url: str) -> tuple[str, str, str] | None:
    if any(ch in url for ch in "\\\r\n\t ") or len(url) > 2000:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    # A browser resolves dot segments: /app/../admin would leave the allowed path.
    segments = parts.path.lower().replace("%2e", ".").split("/")
    if any(segment in (".", "..") for segment in segments):
        return None
    default_port = 443 if parts.scheme == "https" else 80
    netloc = f"{parts.hostname.lower()}:{port or default_port}"
    return parts.scheme, netloc, parts.path or "/"


def _under(candidate: tuple[str, str, str], prefix: str) -> bool:
    allowed = _split(prefix)
    if allowed is None:
        return False
    scheme, netloc, path = candidate
    allowed_scheme, allowed_netloc, allowed_path = allowed
    if (scheme, netloc) != (allowed_scheme, allowed_netloc):
        return False
    # A path prefix ends at a segment: /app allows /app and /app/x, never /apple.
    base = allowed_path.rstrip("/")
    return path == base or path.startswith(base + "/")
