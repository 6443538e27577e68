"""An app with Google and GitHub sign-in pointing at the loopback provider
(tests/oauth_provider.py), on the same database as the session's app, and a "browser"
that follows the sign-in's redirects by hand: app → provider → app → SPA."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from backend.app import create_app
from backend.core.settings import Settings
from tests.graphql_client import gql
from tests.oauth_provider import OAuthProvider

APP_URL = "http://backline.test"
SPA = "http://spa.test/signed-in"
EXCHANGE = """
mutation X($code: String!) {
  exchangeLoginCode(code: $code) { accessToken refreshToken expiresAt user { id handle email } }
}
"""


@pytest.fixture(scope="session")
def oauth_provider() -> Iterator[OAuthProvider]:
    provider = OAuthProvider()
    provider.register_app(APP_URL)
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
async def oauth_app(database_url: str, oauth_provider: OAuthProvider, tmp_path_factory):
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("oauth-data"),
        secret_key="oauth-test-secret-key-that-is-long-enough-for-hs256",
        worker_threads=0,
        watch_sources=False,
        oauth_redirects="http://spa.test/signed-in, http://spa.test/settings/",
        **oauth_provider.settings(),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@dataclass
class Browser:
    """The app over ASGI (keeping its cookies, like a browser) and the provider over HTTP."""

    app: httpx.AsyncClient
    provider: httpx.AsyncClient

    async def start(
        self, provider: str, redirect: str | None = SPA, link: str | None = None
    ) -> httpx.Response:
        params = {key: value for key, value in (("redirect", redirect), ("link", link)) if value}
        return await self.app.get(f"/auth/{provider}/login", params=params)

    async def authorize(self, login: httpx.Response) -> str:
        """The provider's answer to the login redirect: the app's callback URL."""
        assert login.status_code == 302, login.text
        answer = await self.provider.get(login.headers["location"])
        assert answer.status_code == 302, answer.text
        callback = answer.headers["location"]
        assert callback.startswith(APP_URL), callback
        return callback

    async def callback(self, url: str) -> httpx.Response:
        return await self.app.get(url.removeprefix(APP_URL))

    async def follow(self, url: str) -> httpx.Response:
        """Start (or continue, from a URL of the app) to the final response."""
        response = await self.app.get(url.removeprefix(APP_URL))
        return await self.callback(await self.authorize(response))

    async def sign_in(self, provider: str, **start: str | None) -> dict[str, str]:
        """The whole flow; the query parameters the SPA gets."""
        login = await self.start(provider, **start)
        if login.status_code == 302 and login.headers["location"].startswith("http://spa.test"):
            return spa_params(login)  # refused before the provider was asked
        return spa_params(await self.callback(await self.authorize(login)))

    async def sign_in_tokens(self, provider: str) -> dict:
        """Sign in and exchange the code: the AuthPayload."""
        params = await self.sign_in(provider)
        assert "code" in params, params
        result = await gql(self.app, EXCHANGE, {"code": params["code"]})
        return result.ok()["exchangeLoginCode"]


def spa_params(response: httpx.Response) -> dict[str, str]:
    """The query of a redirect to the SPA (which must be where it goes)."""
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith("http://spa.test/"), location
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


@pytest.fixture
async def browser(oauth_app, engine, oauth_provider: OAuthProvider) -> AsyncIterator[Browser]:
    oauth_provider.reset()
    transport = httpx.ASGITransport(app=oauth_app)
    async with (
        httpx.AsyncClient(transport=transport, base_url=APP_URL) as app_client,
        httpx.AsyncClient() as provider_client,
    ):
        yield Browser(app_client, provider_client)


@pytest.fixture
async def other_browser(oauth_app, browser: Browser) -> AsyncIterator[Browser]:
    """A second browser (no cookies shared with the first)."""
    transport = httpx.ASGITransport(app=oauth_app)
    async with (
        httpx.AsyncClient(transport=transport, base_url=APP_URL) as app_client,
        httpx.AsyncClient() as provider_client,
    ):
        yield Browser(app_client, provider_client)
