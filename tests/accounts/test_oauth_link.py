"""Linking a provider to a signed-in account (a link URL with a short-lived ticket) and
unlinking it, never the last way to sign in. Integrations' API tokens may do neither."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select, update

from backend.accounts.models import LoginCode, OAuthIdentity, User
from tests.accounts.conftest import APP_URL, EXCHANGE, spa_params
from tests.graphql_client import gql, register

SETTINGS_PAGE = "http://spa.test/settings/accounts"
LINK = "mutation L($p: String!, $r: String!) { linkIdentityUrl(provider: $p, redirect: $r) }"
UNLINK = (
    "mutation U($p: String!) { unlinkIdentity(provider: $p) { handle identities { provider } } }"
)
IDENTITIES = "{ viewer { id identities { provider email } } }"
API_TOKEN = 'mutation { createApiToken(name: "bot") { token } }'


async def link_url(browser, token: str, provider: str, redirect: str = SETTINGS_PAGE) -> str:
    result = await gql(browser.app, LINK, {"p": provider, "r": redirect}, token=token)
    return result.ok()["linkIdentityUrl"]


async def providers_of(browser, token: str) -> list[str]:
    viewer = (await gql(browser.app, IDENTITIES, token=token)).ok()["viewer"]
    return [identity["provider"] for identity in viewer["identities"]]


async def test_a_signed_in_user_links_a_provider(browser, other_browser, oauth_provider):
    token, user_id = await register(browser.app, "kim")  # kim@example.org, unverified
    oauth_provider.user.email = "kim.on.github@example.org"
    url = await link_url(browser, token, "github")
    assert url.startswith("http://backline.test/auth/github/login?")
    params = spa_params(await browser.follow(url))
    assert params == {"linked": "github"}
    assert "code" not in params  # the SPA is signed in already
    assert await providers_of(browser, token) == ["github"]
    # From now on GitHub signs this account in.
    payload = await other_browser.sign_in_tokens("github")
    assert payload["user"]["id"] == user_id


async def test_linking_the_same_email_verifies_it(browser, session_factory):
    token, _ = await register(browser.app, "kim")  # kim@example.org, as on Google
    assert spa_params(await browser.follow(await link_url(browser, token, "google")))
    async with session_factory() as db:
        assert (await db.scalar(select(User))).email_verified is True


async def test_an_identity_of_another_user_cannot_be_linked(
    browser, other_browser, session_factory
):
    owner = await other_browser.sign_in_tokens("github")  # kim's GitHub makes kim's account
    token, _ = await register(browser.app, "sam")
    params = spa_params(await browser.follow(await link_url(browser, token, "github")))
    assert params["error"] == "identity_in_use"
    assert await providers_of(browser, token) == []
    assert await providers_of(browser, owner["accessToken"]) == ["github"]
    async with session_factory() as db:
        assert len((await db.scalars(select(OAuthIdentity))).all()) == 1


async def test_a_provider_is_linked_once(browser, oauth_provider):
    token, _ = await register(browser.app, "kim")
    await browser.follow(await link_url(browser, token, "github"))
    again = await gql(browser.app, LINK, {"p": "github", "r": SETTINGS_PAGE}, token=token)
    assert again.codes == ["BAD_USER_INPUT"]
    assert again.errors[0]["extensions"]["field"] == "provider"


async def test_a_link_url_needs_a_person_an_offered_provider_and_an_allowed_redirect(browser):
    anonymous = await gql(browser.app, LINK, {"p": "github", "r": SETTINGS_PAGE})
    assert anonymous.codes == ["UNAUTHENTICATED"]
    token, _ = await register(browser.app, "kim")
    unknown = await gql(browser.app, LINK, {"p": "gitlab", "r": SETTINGS_PAGE}, token=token)
    assert unknown.codes == ["BAD_USER_INPUT"]
    assert unknown.errors[0]["extensions"]["field"] == "provider"
    elsewhere = await gql(browser.app, LINK, {"p": "github", "r": "http://evil.test/"}, token=token)
    assert elsewhere.codes == ["BAD_USER_INPUT"]
    assert elsewhere.errors[0]["extensions"]["field"] == "redirect"
    api_token = (await gql(browser.app, API_TOKEN, token=token)).ok()["createApiToken"]["token"]
    by_token = await gql(browser.app, LINK, {"p": "github", "r": SETTINGS_PAGE}, token=api_token)
    assert by_token.codes == ["FORBIDDEN"]


async def test_a_bad_used_or_expired_link_ticket_links_nothing(
    browser, other_browser, session_factory
):
    token, _ = await register(browser.app, "kim")
    google_ticket = ticket_of(await link_url(browser, token, "google"))
    expired = ticket_of(await link_url(browser, token, "github"))
    async with session_factory() as db:
        await db.execute(
            update(LoginCode)
            .where(LoginCode.provider == "github")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await db.commit()
    # Not a ticket; an expired one; one for another provider; an access token.
    for ticket in ("not-a-ticket", expired, google_ticket, token):
        params = await browser.sign_in("github", redirect=SETTINGS_PAGE, link=ticket)
        assert params["error"] == "link_expired", ticket
    assert await providers_of(browser, token) == []
    # A ticket is no sign-in code either.
    fresh = ticket_of(await link_url(browser, token, "github"))
    assert (await gql(browser.app, EXCHANGE, {"code": fresh})).codes == ["UNAUTHENTICATED"]


async def test_a_link_url_works_once_and_for_minutes(browser, other_browser, session_factory):
    token, _ = await register(browser.app, "kim")
    url = await link_url(browser, token, "google")
    async with session_factory() as db:
        ticket = (await db.scalars(select(LoginCode))).one()
    assert ticket.purpose == "link" and ticket.provider == "google"
    assert timedelta(0) < ticket.expires_at - ticket.created_at <= timedelta(minutes=5)
    assert spa_params(await browser.follow(url)) == {"linked": "google"}
    # The same URL again (from the history, a proxy's log): spent when the link started.
    again = await other_browser.app.get(url.removeprefix(APP_URL))
    assert spa_params(again)["error"] == "link_expired"


def ticket_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["link"][0]


async def test_unlink_keeps_the_last_way_to_sign_in(browser, other_browser):
    payload = await browser.sign_in_tokens("github")  # an OAuth-only account: no password
    token = payload["accessToken"]
    last = await gql(browser.app, UNLINK, {"p": "github"}, token=token)
    assert last.codes == ["BAD_USER_INPUT"]
    assert "only way to sign in" in last.errors[0]["message"]
    assert await providers_of(browser, token) == ["github"]
    # With Google linked as well, GitHub can go; then Google is the last one.
    assert spa_params(await browser.follow(await link_url(browser, token, "google")))
    assert sorted(await providers_of(browser, token)) == ["github", "google"]
    unlinked = (await gql(browser.app, UNLINK, {"p": "github"}, token=token)).ok()
    assert unlinked["unlinkIdentity"]["identities"] == [{"provider": "google"}]
    assert (await gql(browser.app, UNLINK, {"p": "google"}, token=token)).codes == [
        "BAD_USER_INPUT"
    ]
    # Signing in with the unlinked GitHub account again: its verified email is this
    # account's (verified too), so it is linked back here rather than making another.
    again = await other_browser.sign_in_tokens("github")
    assert again["user"]["id"] == payload["user"]["id"]


async def test_a_password_account_can_unlink_its_only_identity(browser):
    token, _ = await register(browser.app, "kim")
    await browser.follow(await link_url(browser, token, "github"))
    result = await gql(browser.app, UNLINK, {"p": "github"}, token=token)
    assert result.ok()["unlinkIdentity"] == {"handle": "kim", "identities": []}
    missing = await gql(browser.app, UNLINK, {"p": "github"}, token=token)
    assert missing.codes == ["NOT_FOUND"]


async def test_api_tokens_cannot_unlink(browser):
    token, _ = await register(browser.app, "kim")
    await browser.follow(await link_url(browser, token, "github"))
    api_token = (await gql(browser.app, API_TOKEN, token=token)).ok()["createApiToken"]["token"]
    assert (await gql(browser.app, UNLINK, {"p": "github"}, token=api_token)).codes == ["FORBIDDEN"]
    assert (await gql(browser.app, UNLINK, {"p": "github"})).codes == ["UNAUTHENTICATED"]
    assert await providers_of(browser, token) == ["github"]


async def test_linking_is_refused_when_the_account_has_that_provider(browser, oauth_provider):
    token, _ = await register(browser.app, "kim")
    url = await link_url(browser, token, "github")
    second = await link_url(browser, token, "github")  # before the first link finished
    await browser.follow(url)
    oauth_provider.user.sub = "2002"  # another GitHub account
    params = spa_params(await browser.follow(second))
    assert params["error"] == "provider_already_linked"
