"""The configured providers (settings → Authlib clients) and how each says who signed in.

A provider is offered only when both its client id and secret are set. Google is OpenID
Connect: discovery, a nonce, and an ID token whose signature Authlib checks against the
provider's JWKS. GitHub is plain OAuth 2: the profile comes from its API, the email from
``/user/emails`` (the primary one, and only if GitHub verified it)."""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # Authlib 1.9 asks for its httpx fork "httpx2" and warns on every start that plain
    # httpx (which the rest of Backline uses, and which works) is deprecated. Its errors
    # are those of whichever of the two it took: authlib_httpx is that module.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client._compat import httpx2 as authlib_httpx  # noqa: F401
    from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App

from backend.accounts.oauth.service import Profile, SignInRefused
from backend.core import validation
from backend.core.settings import Settings

# Time for one call to a provider (discovery, token exchange, its API).
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ProviderInfo:
    name: str  # in URLs and OAuthIdentity.provider
    label: str  # for people: "Sign in with <label>"


@dataclass(frozen=True)
class Provider:
    info: ProviderInfo
    client: StarletteOAuth2App
    # The profile from the token response of a finished authorization.
    profile: Callable[[StarletteOAuth2App, dict[str, Any]], Awaitable[Profile]]


GOOGLE = ProviderInfo("google", "Google")
GITHUB = ProviderInfo("github", "GitHub")


def configured(settings: Settings) -> list[ProviderInfo]:
    """The providers this server offers, in display order."""
    offered = []
    if settings.google_client_id and settings.google_client_secret:
        offered.append(GOOGLE)
    if settings.github_client_id and settings.github_client_secret:
        offered.append(GITHUB)
    return offered


def create_registry(settings: Settings) -> dict[str, Provider]:
    """An Authlib client per configured provider (each caches discovery and keys)."""
    oauth = OAuth()
    registry: dict[str, Provider] = {}
    for info in configured(settings):
        if info is GOOGLE:
            oauth.register(
                name=info.name,
                client_id=settings.google_client_id,
                client_secret=settings.google_client_secret,
                server_metadata_url=settings.google_discovery_url,
                client_kwargs=_client_kwargs("openid email profile"),
            )
            profile = _google_profile
        else:
            oauth.register(
                name=info.name,
                client_id=settings.github_client_id,
                client_secret=settings.github_client_secret,
                authorize_url=settings.github_authorize_url,
                access_token_url=settings.github_token_url,
                api_base_url=settings.github_api_url.rstrip("/") + "/",
                client_kwargs=_client_kwargs("read:user user:email"),
            )
            profile = _github_profile
        client = oauth.create_client(info.name)
        assert isinstance(client, StarletteOAuth2App)
        registry[info.name] = Provider(info=info, client=client, profile=profile)
    return registry


def _client_kwargs(scope: str) -> dict[str, Any]:
    # PKCE (S256) on both: a code caught on its way back is useless without the verifier.
    return {"scope": scope, "code_challenge_method": "S256", "timeout": TIMEOUT_SECONDS}


async def _google_profile(client: StarletteOAuth2App, token: dict[str, Any]) -> Profile:
    # Authlib puts the ID token's claims here after checking its signature (JWKS),
    # issuer, audience, expiry and nonce; without an ID token nobody is proven.
    claims = token.get("userinfo")
    if not claims or not claims.get("sub"):
        raise SignInRefused("provider_error", "Google sent no ID token.")
    if claims.get("email_verified") not in (True, "true"):
        raise _unverified(GOOGLE)
    return Profile(
        provider=GOOGLE.name,
        subject=str(claims["sub"]),
        email=_email(claims.get("email"), GOOGLE),
        name=claims.get("name"),
        avatar_url=claims.get("picture"),
    )


async def _github_profile(client: StarletteOAuth2App, token: dict[str, Any]) -> Profile:
    user = await _get_json(client, "user", token)
    emails = await _get_json(client, "user/emails", token)
    if not isinstance(user, dict) or user.get("id") is None or not isinstance(emails, list):
        raise SignInRefused("provider_error", "GitHub's API answered something unexpected.")
    primary = next(
        (
            entry
            for entry in emails
            if isinstance(entry, dict) and entry.get("primary") and entry.get("verified") is True
        ),
        None,
    )
    if primary is None:
        raise _unverified(GITHUB)
    return Profile(
        provider=GITHUB.name,
        subject=str(user["id"]),  # the login can be renamed; the id cannot
        email=_email(primary.get("email"), GITHUB),
        login=user.get("login"),
        name=user.get("name"),
        avatar_url=user.get("avatar_url"),
    )


async def _get_json(client: StarletteOAuth2App, path: str, token: dict[str, Any]) -> Any:
    response = await client.get(path, token=token, headers={"Accept": "application/json"})
    response.raise_for_status()
    return response.json()


def _email(value: Any, info: ProviderInfo) -> str:
    if not isinstance(value, str) or not validation.is_email(value.strip().lower()):
        raise SignInRefused("provider_error", f"{info.label} sent no usable email address.")
    return value.strip().lower()


def _unverified(info: ProviderInfo) -> SignInRefused:
    return SignInRefused(
        "email_unverified",
        f"Your {info.label} account has no verified email address. Verify one at "
        f"{info.label}, then sign in again.",
    )
