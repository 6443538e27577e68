"""``/auth/<provider>/login`` and ``/auth/<provider>/callback``: the browser's part of an
OAuth sign-in. Every way it can go wrong ends on the SPA (``redirect?error=<code>``) when
the redirect is known, else on a small HTML page with a 400; never a 500, never half an
account. Error codes: access_denied, provider_error, provider_unavailable, invalid_state,
email_unverified, email_in_use, identity_in_use, provider_already_linked, link_expired,
server_error."""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.base_client import OAuthError
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from joserfc.errors import JoseError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts.oauth import codes, providers, redirects, service, tickets
from backend.accounts.oauth.service import SignInRefused
from backend.core.settings import Settings

logger = logging.getLogger("backline.oauth")

# Starlette's SessionMiddleware (app.py) keeps Authlib's state, nonce and PKCE verifier,
# and where to return, in this signed cookie; only /auth/* sees it, for ten minutes.
SESSION_COOKIE = "backline_oauth"
SESSION_MAX_AGE = 600

# Authlib talks to providers with httpx (or httpx2, once installed): its errors.
_TransportError = providers.authlib_httpx.TransportError
_StatusError = providers.authlib_httpx.HTTPStatusError
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def session_secret(settings: Settings) -> str:
    """The session cookie's key: derived from the app's secret, so a signature made for
    one purpose (this cookie) can never pass for another (an access token)."""
    key = settings.resolved_secret_key.encode()
    return hmac.new(key, b"backline oauth session", hashlib.sha256).hexdigest()


def session_path(settings: Settings) -> str:
    """The cookie's path: /auth, below the public URL's path when a proxy serves the API
    under one (https://example.org/backline/auth)."""
    return urlsplit(settings.public_url).path.rstrip("/") + "/auth"


def base_url(settings: Settings, request: Request) -> str:
    """The API as browsers reach it: BACKLINE_PUBLIC_URL, else the address this one used
    (the callback URL registered at the provider must match it)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


async def _spend_ticket(request: Request, ticket: str, provider: str) -> int:
    """The user a link ticket is for; spent now, so the link URL works only once."""
    session_factory = request.app.state.session_factory
    async with session_factory() as db_session:
        user_id = await tickets.consume(db_session=db_session, ticket=ticket, provider=provider)
        await db_session.commit()
    return user_id


class _Failed(Exception):
    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error, self.message = error, message


def create_oauth_router(settings: Settings) -> APIRouter:
    registry = providers.create_registry(settings)
    router = APIRouter(prefix="/auth")

    @router.get("/{provider}/login", include_in_schema=False)
    async def login(
        request: Request, provider: str, redirect: str | None = None, link: str | None = None
    ) -> Response:
        """Start a sign-in (or, with a link ticket, a link) at the provider."""
        entry = registry.get(provider)
        if entry is None:
            return _unknown_provider(provider)
        base = base_url(settings, request)
        prefixes = redirects.allowed_prefixes(settings, base_url=base)
        target = redirect or redirects.default_redirect(prefixes)
        if not redirects.is_allowed(target, prefixes):
            return _page(
                400,
                "Sign-in not started",
                "This sign-in would return to an address this server does not allow. "
                "Its administrator can allow it in BACKLINE_OAUTH_REDIRECTS.",
            )
        try:
            link_user = await _spend_ticket(request, link, provider) if link else None
            callback = f"{base}/auth/{provider}/callback"
            found = await _authorization_url(entry, callback)
            await entry.client.save_authorize_data(request, redirect_uri=callback, **found)
        except tickets.LinkTicketInvalid as error:
            return _back(target, "link_expired", error.message)
        except _Failed as failed:
            return _back(target, failed.error, failed.message)
        request.session[_key(provider)] = {
            "state": found["state"],
            "redirect": target,
            "link_user": link_user,
        }
        return RedirectResponse(found["url"], status_code=302, headers=_HEADERS)

    @router.get("/{provider}/callback", include_in_schema=False)
    async def callback(request: Request, provider: str) -> Response:
        """The provider sends the browser back here: finish, then return to the SPA."""
        entry = registry.get(provider)
        if entry is None:
            return _unknown_provider(provider)
        pending = request.session.get(_key(provider))
        if not isinstance(pending, dict):
            # No sign-in was started in this browser, or it has been finished already:
            # a forged or replayed callback. There is nowhere known to return to.
            return _page(
                400,
                "Sign-in not completed",
                "This sign-in link has expired or was used already. Go back to the app "
                "and sign in again.",
            )
        target = pending["redirect"]
        state = request.query_params.get("state") or ""
        if not hmac.compare_digest(state.encode(), str(pending["state"]).encode()):
            # Not the answer to the sign-in this browser started (which may still come).
            return _back(target, "invalid_state", "The sign-in could not be verified; try again.")
        del request.session[_key(provider)]
        try:
            profile = await _profile(entry, request)
            location = await _complete(
                request.app.state.session_factory, entry, profile, pending.get("link_user")
            )
        except _Failed as failed:
            return _back(target, failed.error, failed.message)
        except SignInRefused as refused:
            return _back(target, refused.error, refused.message)
        except Exception:  # logged; the browser still gets somewhere sensible
            logger.exception("OAuth callback of %s failed", provider)
            return _back(target, "server_error", "Something went wrong; try again later.")
        return RedirectResponse(
            redirects.with_params(target, location), status_code=302, headers=_HEADERS
        )

    return router


async def _authorization_url(entry: providers.Provider, callback: str) -> dict[str, Any]:
    try:
        # Makes state, nonce (OpenID) and the PKCE verifier; Google's needs discovery.
        return await entry.client.create_authorization_url(callback)
    except (_TransportError, _StatusError, ValueError) as error:
        logger.warning("OAuth: %s unreachable at login: %r", entry.info.name, error)
        raise _Failed(
            "provider_unavailable", f"{entry.info.label} cannot be reached; try again later."
        ) from error
    except Exception as error:  # e.g. a discovery document without endpoints
        logger.exception("OAuth: cannot start a sign-in with %s", entry.info.name)
        raise _Failed(
            "provider_error", f"{entry.info.label} sign-in is not working; try again later."
        ) from error


async def _profile(entry: providers.Provider, request: Request) -> service.Profile:
    """Exchange the code (state, PKCE and, for OpenID, the ID token and nonce checked by
    Authlib) and read who signed in."""
    label = entry.info.label
    error = request.query_params.get("error")
    if error == "access_denied":
        raise _Failed("access_denied", f"Signing in with {label} was cancelled.")
    if error:
        raise _Failed("provider_error", f"{label} refused the sign-in ({error[:100]}).")
    try:
        token = await entry.client.authorize_access_token(request)
        return await entry.profile(entry.client, token)
    except SignInRefused:
        raise
    except (_TransportError, _StatusError) as failure:
        logger.warning("OAuth: %s unreachable at callback: %r", entry.info.name, failure)
        if isinstance(failure, _StatusError) and failure.response.status_code < 500:
            raise _Failed("provider_error", f"{label} refused the sign-in.") from failure
        raise _Failed(
            "provider_unavailable", f"{label} cannot be reached; try again later."
        ) from failure
    except (OAuthError, JoseError, ValueError, KeyError, TypeError) as failure:
        # A refused code, a bad PKCE verifier, an ID token with a wrong signature,
        # issuer, audience or nonce: the answer cannot be trusted.
        logger.warning("OAuth: %s answer refused: %r", entry.info.name, failure)
        raise _Failed("provider_error", f"{label}'s answer could not be verified.") from failure


async def _complete(
    session_factory: async_sessionmaker[AsyncSession],
    entry: providers.Provider,
    profile: service.Profile,
    link_user: int | None,
) -> dict[str, str]:
    """Sign in or link, in one transaction; the query parameters for the SPA."""
    for attempt in (1, 2):
        async with session_factory() as db_session:
            try:
                if link_user is not None:
                    await service.link(db_session=db_session, profile=profile, user_id=link_user)
                    await db_session.commit()
                    return {"linked": entry.info.name}
                user = await service.sign_in(db_session=db_session, profile=profile)
                code = await codes.create(
                    db_session=db_session, user_id=user.id, provider=entry.info.name
                )
                await db_session.commit()
                return {"code": code}
            except IntegrityError:
                # A concurrent first sign-in took the handle, email or identity; the
                # second attempt finds what it made.
                await db_session.rollback()
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")


def _key(provider: str) -> str:
    return f"backline_{provider}"


def _back(target: str, error: str, message: str) -> Response:
    location = redirects.with_params(target, {"error": error, "error_description": message})
    return RedirectResponse(location, status_code=302, headers=_HEADERS)


def _unknown_provider(provider: str) -> Response:
    return _page(
        404, "Unknown sign-in provider", f"This server offers no sign-in with '{provider}'."
    )


def _page(status: int, title: str, message: str) -> HTMLResponse:
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width">'
        f"<title>{html.escape(title)}</title>"
        '<body style="font-family:system-ui,sans-serif;max-width:32em;margin:4em auto">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers=_HEADERS)
