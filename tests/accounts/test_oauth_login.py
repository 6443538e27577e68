"""Signing in with Google (OpenID Connect) and GitHub against the loopback provider:
first and later logins, accounts found by a verified email, handles, login codes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select, update

from backend.accounts import service as accounts_service
from backend.accounts.models import LoginCode, OAuthIdentity, RefreshToken, User
from backend.accounts.oauth.service import Profile, handle_base
from backend.core.database import utcnow
from tests.accounts.conftest import EXCHANGE, spa_params
from tests.graphql_client import gql, register

VIEWER = "{ viewer { handle email identities { provider email linkedAt } } }"
REFRESH = "mutation R($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }"
PROVIDERS = "{ authProviders { name displayName loginUrl } }"


async def count(session_factory, model) -> int:
    async with session_factory() as db:
        return await db.scalar(select(func.count()).select_from(model))


async def test_auth_providers_lists_the_configured_ones_with_absolute_urls(browser):
    providers = (await gql(browser.app, PROVIDERS)).ok()["authProviders"]
    assert providers == [
        {
            "name": "google",
            "displayName": "Google",
            "loginUrl": "http://backline.test/auth/google/login",
        },
        {
            "name": "github",
            "displayName": "GitHub",
            "loginUrl": "http://backline.test/auth/github/login",
        },
    ]
    with_redirect = await gql(
        browser.app, '{ authProviders(redirect: "http://spa.test/signed-in") { loginUrl } }'
    )
    assert with_redirect.ok()["authProviders"][0]["loginUrl"] == (
        "http://backline.test/auth/google/login?redirect=http%3A%2F%2Fspa.test%2Fsigned-in"
    )


async def test_an_unconfigured_provider_is_not_offered(client, browser):
    # The session's app has no OAuth settings at all.
    assert (await gql(client, PROVIDERS)).ok()["authProviders"] == []
    for app_client, provider in ((client, "google"), (client, "github"), (browser.app, "gitlab")):
        page = await app_client.get(f"/auth/{provider}/login")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "no sign-in with" in page.text


async def test_google_first_login_creates_a_verified_user(browser, oauth_provider, session_factory):
    payload = await browser.sign_in_tokens("google")
    assert payload["user"]["handle"] == "kim"
    assert payload["user"]["email"] == "kim@example.org"
    viewer = (await gql(browser.app, VIEWER, token=payload["accessToken"])).ok()["viewer"]
    assert [(i["provider"], i["email"]) for i in viewer["identities"]] == [
        ("google", "kim@example.org")
    ]
    async with session_factory() as db:
        user = await db.scalar(select(User))
        assert user.email_verified is True
        assert user.password_hash is None
        assert user.display_name == "Kim Deal"
        identity = await db.scalar(select(OAuthIdentity))
        assert (identity.provider, identity.subject) == ("google", "1001")
        # Only the code's hash is stored.
        stored = await db.scalar(select(LoginCode))
        assert stored.used_at is not None and len(stored.code_hash) == 64
    # The app asked with PKCE (S256) and, being OpenID, with a nonce.
    asked = oauth_provider.authorize_requests[-1]
    assert asked["code_challenge_method"] == "S256" and asked["code_challenge"]
    assert asked["nonce"] and asked["state"]
    assert asked["scope"] == "openid email profile"


async def test_github_first_login_uses_the_login_and_the_primary_verified_email(
    browser, oauth_provider, session_factory
):
    oauth_provider.user.login = "Kim.Deal"
    oauth_provider.user.email = "Kim@Pixies.example"
    oauth_provider.user.other_emails = [("kim.work@example.org", True)]
    payload = await browser.sign_in_tokens("github")
    assert payload["user"]["handle"] == "kim-deal"
    assert payload["user"]["email"] == "kim@pixies.example"
    asked = oauth_provider.authorize_requests[-1]
    assert asked["code_challenge_method"] == "S256" and "nonce" not in asked
    async with session_factory() as db:
        user = await db.scalar(select(User))
        assert user.email_verified is True
        assert user.avatar_url.endswith("/avatars/1001.png")


async def test_a_second_login_is_the_same_user(browser, other_browser, session_factory):
    first = await browser.sign_in_tokens("github")
    again = await other_browser.sign_in_tokens("github")
    assert again["user"]["id"] == first["user"]["id"]
    assert await count(session_factory, User) == 1
    assert await count(session_factory, OAuthIdentity) == 1
    # Two logins, two refresh-token families.
    async with session_factory() as db:
        families = await db.scalar(select(func.count(func.distinct(RefreshToken.family_id))))
    assert families == 2


async def test_a_taken_handle_gets_a_suffix(browser, session_factory):
    await register(browser.app, "kim")  # kim@example.org... but a local, unverified one
    async with session_factory() as db:
        await db.execute(update(User).values(email="someone.else@example.org"))
        await db.commit()
    payload = await browser.sign_in_tokens("github")
    assert payload["user"]["handle"] == "kim-2"


def test_handles_are_slugged_to_the_handle_rule():
    cases = {
        "Kim.Deal": "kim-deal",
        "ÉLODIE": "elodie",
        "__x__": "x",
        "a" * 60: "a" * 40,
        "日本": "user",
        "john_doe-": "john_doe",
    }
    for login, handle in cases.items():
        made = handle_base(Profile("github", "1", "x@example.org", login=login))
        assert made == handle, login
        assert accounts_service._check_handle(made) == made
    from_email = handle_base(Profile("google", "1", "kim.deal+music@example.org"))
    assert from_email == "kim-deal-music"


async def test_a_verified_account_with_the_email_is_linked(browser, session_factory):
    _, user_id = await register(browser.app, "kimdeal")
    async with session_factory() as db:
        await db.execute(update(User).values(email="kim@example.org", email_verified=True))
        await db.commit()
    payload = await browser.sign_in_tokens("google")
    assert payload["user"]["id"] == user_id
    assert payload["user"]["handle"] == "kimdeal"
    assert await count(session_factory, User) == 1
    assert await count(session_factory, OAuthIdentity) == 1


async def test_an_unverified_account_with_the_email_is_not_taken_over(browser, session_factory):
    await register(browser.app, "kim")  # kim@example.org, email not verified
    params = await browser.sign_in("google")
    assert params["error"] == "email_in_use"
    assert "password" in params["error_description"]
    assert "code" not in params
    assert await count(session_factory, User) == 1
    assert await count(session_factory, OAuthIdentity) == 0
    assert await count(session_factory, LoginCode) == 0


async def test_an_unverified_provider_email_is_refused(browser, oauth_provider, session_factory):
    oauth_provider.user.email_verified = False
    for provider in ("google", "github"):
        params = await browser.sign_in(provider)
        assert params["error"] == "email_unverified", provider
    # GitHub: a verified address that is not the primary one does not count either.
    oauth_provider.user.other_emails = [("kim.work@example.org", True)]
    assert (await browser.sign_in("github"))["error"] == "email_unverified"
    assert await count(session_factory, User) == 0
    assert await count(session_factory, OAuthIdentity) == 0


async def test_a_login_code_works_once_and_its_second_use_ends_the_login(browser):
    params = await browser.sign_in("google")
    first = await gql(browser.app, EXCHANGE, {"code": params["code"]})
    tokens = first.ok()["exchangeLoginCode"]
    second = await gql(browser.app, EXCHANGE, {"code": params["code"]})
    assert second.codes == ["UNAUTHENTICATED"]
    # Someone had the code: whatever it gave (to the SPA or to them) is signed out.
    assert (await gql(browser.app, REFRESH, {"t": tokens["refreshToken"]})).codes == [
        "UNAUTHENTICATED"
    ]
    assert (await gql(browser.app, EXCHANGE, {"code": "made-up"})).codes == ["UNAUTHENTICATED"]


async def test_an_expired_login_code_is_refused(browser, session_factory):
    params = await browser.sign_in("github")
    async with session_factory() as db:
        await db.execute(update(LoginCode).values(expires_at=utcnow() - timedelta(seconds=1)))
        await db.commit()
    result = await gql(browser.app, EXCHANGE, {"code": params["code"]})
    assert result.codes == ["UNAUTHENTICATED"]
    assert "expired" in result.errors[0]["message"]


async def test_an_oauth_login_is_a_refresh_token_family(browser, other_browser):
    payload = await browser.sign_in_tokens("google")
    other = await other_browser.sign_in_tokens("google")  # another device, another family
    first = payload["refreshToken"]
    second = (await gql(browser.app, REFRESH, {"t": first})).ok()["refreshToken"]
    assert second["refreshToken"] != first
    assert (await gql(browser.app, VIEWER, token=second["accessToken"])).ok()["viewer"]
    # The used token comes back: the family dies, its newest token too...
    assert (await gql(browser.app, REFRESH, {"t": first})).codes == ["UNAUTHENTICATED"]
    assert (await gql(browser.app, REFRESH, {"t": second["refreshToken"]})).codes == [
        "UNAUTHENTICATED"
    ]
    # ...but not the other device's login.
    assert (await gql(browser.app, REFRESH, {"t": other["refreshToken"]})).ok()


async def test_concurrent_first_sign_ins_make_one_account(browser, other_browser, session_factory):
    # Both callbacks race to create the user; the loser's unique-key violation is retried
    # and finds the winner's account.
    first = await browser.authorize(await browser.start("github"))
    second = await other_browser.authorize(await other_browser.start("github"))
    done = await asyncio.gather(browser.callback(first), other_browser.callback(second))
    assert all("code" in spa_params(response) for response in done)
    assert await count(session_factory, User) == 1
    assert await count(session_factory, OAuthIdentity) == 1
