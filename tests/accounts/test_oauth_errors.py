"""Every way an OAuth sign-in can fail ends on the SPA with ?error= (when the redirect is
known) or on a small 400 page; never a 500, never half an account."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from joserfc.jwk import RSAKey
from sqlalchemy import func, select

from backend.accounts.models import LoginCode, OAuthIdentity, User
from backend.accounts.oauth import redirects
from backend.core.settings import Settings
from tests.accounts.conftest import SPA, spa_params


async def nothing_was_made(session_factory) -> bool:
    async with session_factory() as db:
        for model in (User, OAuthIdentity, LoginCode):
            if await db.scalar(select(func.count()).select_from(model)):
                return False
    return True


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


@pytest.mark.parametrize(
    "redirect",
    [
        "http://evil.test/signed-in",
        "http://spa.test.evil.test/signed-in",
        "http://spa.test/signed-in-elsewhere",
        "https://spa.test/signed-in",  # another scheme is another origin
        "http://spa.test/settings/../../admin",
        "http://user@spa.test/signed-in",
        "javascript:alert(1)",
    ],
)
async def test_a_redirect_not_on_the_allow_list_is_refused(browser, redirect):
    page = await browser.start("google", redirect=redirect)
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")
    assert "BACKLINE_OAUTH_REDIRECTS" in page.text
    assert "location" not in page.headers


def test_allowed_redirects():
    prefixes = ["http://spa.test/signed-in", "https://app.example.org/"]
    assert redirects.is_allowed("http://spa.test/signed-in", prefixes)
    assert redirects.is_allowed("http://spa.test/signed-in/deeper?x=1#y", prefixes)
    assert redirects.is_allowed("https://APP.example.org:443/anything", prefixes)
    assert not redirects.is_allowed("https://app.example.org:8443/", prefixes)
    assert not redirects.is_allowed(
        "https://app.example.org/%2e%2e/x", ["https://app.example.org/a/"]
    )
    # Unset, the API's own origin is the one place allowed.
    own = redirects.allowed_prefixes(
        Settings(oauth_redirects=""), base_url="https://backline.example.org"
    )
    assert own == ["https://backline.example.org/"]


async def test_without_redirect_the_first_allowed_place_is_used(browser):
    callback = await browser.authorize(await browser.start("github", redirect=None))
    done = await browser.callback(callback)
    # SPA is the first of BACKLINE_OAUTH_REDIRECTS.
    assert done.headers["location"].startswith(f"{SPA}?code=")


async def test_a_wrong_state_is_refused_and_the_real_answer_still_works(browser, session_factory):
    callback = await browser.authorize(await browser.start("google"))
    refused = spa_params(await browser.callback(with_query(callback, state="forged")))
    assert refused["error"] == "invalid_state"
    assert await nothing_was_made(session_factory)
    assert "code" in spa_params(await browser.callback(callback))


async def test_a_callback_from_another_browser_is_refused(browser, other_browser, session_factory):
    # An attacker's own code and state, planted on a victim who started no sign-in.
    callback = await browser.authorize(await browser.start("google"))
    page = await other_browser.callback(callback)
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")
    assert "sign in again" in page.text
    assert await nothing_was_made(session_factory)


async def test_a_replayed_callback_is_refused(browser, session_factory):
    callback = await browser.authorize(await browser.start("github"))
    assert "code" in spa_params(await browser.callback(callback))
    replay = await browser.callback(callback)
    assert replay.status_code == 400
    async with session_factory() as db:
        assert await db.scalar(select(func.count()).select_from(LoginCode)) == 1


async def test_a_cancelled_sign_in_returns_access_denied(browser, oauth_provider, session_factory):
    oauth_provider.deny = True
    for provider in ("google", "github"):
        params = await browser.sign_in(provider)
        assert params["error"] == "access_denied", provider
        assert params["error_description"]
    assert await nothing_was_made(session_factory)


async def test_a_provider_error_is_passed_on(browser):
    callback = await browser.authorize(await browser.start("github"))
    state = parse_qs(urlsplit(callback).query)["state"][0]
    url = f"/auth/github/callback?{urlencode({'error': 'server_error', 'state': state})}"
    params = spa_params(await browser.callback(url))
    assert params["error"] == "provider_error"


async def test_a_provider_down_at_the_token_exchange(browser, oauth_provider, session_factory):
    for provider in ("google", "github"):
        callback = await browser.authorize(await browser.start(provider))
        with oauth_provider.down():
            params = spa_params(await browser.callback(callback))
        assert params["error"] == "provider_unavailable", provider
    assert await nothing_was_made(session_factory)


async def test_a_provider_down_at_login(oauth_app, oauth_provider, tmp_path):
    # A fresh app has not read Google's discovery document yet.
    import httpx

    from backend.app import create_app

    app = create_app(oauth_app.state.settings.model_copy(update={"data_dir": tmp_path}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://backline.test"
    ) as client:
        with oauth_provider.down():
            login = await client.get("/auth/google/login", params={"redirect": SPA})
    await app.state.engine.dispose()
    assert spa_params(login)["error"] == "provider_unavailable"


async def test_an_id_token_signed_with_another_key_is_refused(
    browser, oauth_provider, session_factory
):
    oauth_provider.id_token_key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
    params = await browser.sign_in("google")
    assert params["error"] == "provider_error"
    assert await nothing_was_made(session_factory)


async def test_an_id_token_with_another_nonce_is_refused(browser, oauth_provider, session_factory):
    oauth_provider.id_token_nonce = "replayed-nonce"
    params = await browser.sign_in("google")
    assert params["error"] == "provider_error"
    assert await nothing_was_made(session_factory)


async def test_the_session_cookie_is_scoped_and_signed(browser):
    login = await browser.start("google")
    cookie = login.headers["set-cookie"]
    assert cookie.startswith("backline_oauth=")
    lowered = cookie.lower()
    assert "path=/auth" in lowered and "httponly" in lowered and "samesite=lax" in lowered
    assert "max-age=600" in lowered
    # A tampered cookie is no session at all: the callback has nowhere to return to.
    callback = await browser.authorize(login)
    browser.app.cookies.clear()
    browser.app.cookies.set("backline_oauth", "tampered", domain="backline.test", path="/auth")
    page = await browser.callback(callback)
    assert page.status_code == 400


async def test_behind_a_proxy_in_production(oauth_app, tmp_path):
    # The callback and the cookie follow BACKLINE_PUBLIC_URL; the cookie needs HTTPS.
    import httpx

    from backend.app import create_app

    settings = oauth_app.state.settings.model_copy(
        update={
            "data_dir": tmp_path,
            "environment": "production",
            "public_url": "https://backline.example.org/band",
        }
    )
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://10.0.0.5:8000"
    ) as client:
        login = await client.get("/auth/github/login", params={"redirect": SPA})
    await app.state.engine.dispose()
    assert login.status_code == 302
    assert (
        "redirect_uri=https%3A%2F%2Fbackline.example.org%2Fband%2Fauth%2Fgithub%2Fcallback"
        in (login.headers["location"])
    )
    cookie = login.headers["set-cookie"].lower()
    assert "path=/band/auth" in cookie and "secure" in cookie


async def test_a_failure_after_the_account_was_made_leaves_nothing(
    browser, session_factory, monkeypatch
):
    # The user and the identity are written, then the login code fails: all or nothing.
    from backend.accounts.oauth import codes

    async def broken(**_: object) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr(codes, "create", broken)
    params = await browser.sign_in("google")
    assert params["error"] == "server_error"
    assert await nothing_was_made(session_factory)
