"""GraphQL of OAuth sign-in: the offered providers, the code exchange, linking and
unlinking a provider on the signed-in account."""

from __future__ import annotations

from urllib.parse import urlencode

import strawberry

from backend.accounts.graphql import AuthPayload, UserNode
from backend.accounts.oauth import codes, providers, redirects, service, tickets
from backend.core.errors import AlreadyExists, BadUserInput
from backend.graphql.context import Info


@strawberry.type(name="AuthProvider")
class AuthProviderType:
    name: str = strawberry.field(description="google or github; as in OAuthIdentity.provider.")
    display_name: str = strawberry.field(description="For the button: 'Sign in with …'.")
    login_url: str = strawberry.field(
        description="Send the browser here (add ?redirect=<where to come back> unless "
        "authProviders(redirect:) did); it comes back with ?code= for exchangeLoginCode, "
        "or ?error=<code>&error_description=."
    )


def _login_url(info: Info, provider: str, params: dict[str, str]) -> str:
    base = info.context.media_base_url  # BACKLINE_PUBLIC_URL, else the origin used
    query = f"?{urlencode(params)}" if params else ""
    return f"{base}/auth/{provider}/login{query}"


def _provider(info: Info, name: str) -> providers.ProviderInfo:
    for offered in providers.configured(info.context.settings):
        if offered.name == name:
            return offered
    raise BadUserInput("This server offers no sign-in with that provider.", field="provider")


@strawberry.type
class OAuthQueries:
    @strawberry.field(description="The OAuth providers this server offers for sign-in.")
    def auth_providers(self, info: Info, redirect: str | None = None) -> list[AuthProviderType]:
        params = {"redirect": redirect} if redirect else {}
        return [
            AuthProviderType(
                name=offered.name,
                display_name=offered.label,
                login_url=_login_url(info, offered.name, params),
            )
            for offered in providers.configured(info.context.settings)
        ]


@strawberry.type
class OAuthMutations:
    @strawberry.mutation(
        description="Trade the one-time code of an OAuth sign-in for a token pair."
    )
    async def exchange_login_code(self, info: Info, code: str) -> AuthPayload:
        settings = info.context.settings
        try:
            async with info.context.transaction() as db_session:
                pair = await codes.exchange(db_session=db_session, code=code, settings=settings)
        except codes.LoginCodeReused as reused:
            # The failed transaction rolled the revocation back; do it for good.
            async with info.context.transaction() as db_session:
                await codes.revoke_family(db_session=db_session, family_id=reused.family_id)
            raise reused from None
        return AuthPayload.from_pair(pair)

    @strawberry.mutation(
        description="A URL to send the browser to for linking a provider to your account "
        "(good once, for 5 minutes); it comes back to redirect with ?linked=<provider> or "
        "?error=<code>&error_description=."
    )
    async def link_identity_url(self, info: Info, provider: str, redirect: str) -> str:
        viewer_id = info.context.require_session_login()
        offered = _provider(info, provider)
        prefixes = redirects.allowed_prefixes(
            info.context.settings, base_url=info.context.media_base_url
        )
        if not redirects.is_allowed(redirect, prefixes):
            raise BadUserInput(
                "This server does not allow returning to that address (BACKLINE_OAUTH_REDIRECTS).",
                field="redirect",
            )
        async with info.context.db.reading() as db_session:
            linked = await service.has_identity(
                db_session=db_session, user_id=viewer_id, provider=offered.name
            )
        if linked:
            raise AlreadyExists(
                f"Your account is linked to {offered.label} already; unlink it first.",
                field="provider",
            )
        async with info.context.transaction() as db_session:
            ticket = await tickets.issue(
                db_session=db_session, user_id=viewer_id, provider=offered.name
            )
        return _login_url(info, offered.name, {"redirect": redirect, "link": ticket})

    @strawberry.mutation(description="Remove a linked provider; never the last way to sign in.")
    async def unlink_identity(self, info: Info, provider: str) -> UserNode:
        viewer_id = info.context.require_session_login()
        async with info.context.transaction() as db_session:
            user = await service.unlink(db_session=db_session, user_id=viewer_id, provider=provider)
        return UserNode.from_row(user, is_caller=True)
