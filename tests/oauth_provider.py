"""A small OAuth 2 / OpenID Connect provider on loopback, built from Authlib's server
parts, for the sign-in tests. One werkzeug server in a thread speaks two shapes:

- Google's: discovery (``/.well-known/openid-configuration``), ``/oidc/authorize``,
  ``/oidc/token`` (an RS256 ID token with the nonce) and ``/oidc/jwks``;
- GitHub's: ``/login/oauth/authorize``, ``/login/oauth/access_token``, ``/user`` and
  ``/user/emails``.

Both use the authorization code grant with PKCE required (S256 only). There is no login
page: the authorize endpoint approves at once as ``provider.user`` (or denies, with
``provider.deny``), so tests drive it with httpx, following redirects by hand."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, abort, jsonify, request
from joserfc.jwk import RSAKey
from werkzeug.serving import BaseWSGIServer, make_server

from tests.live_server import free_port

GOOGLE_CLIENT = ("google-client-id", "google-client-secret")
GITHUB_CLIENT = ("github-client-id", "github-client-secret")


@dataclass
class TestUser:
    """Who the provider says signs in."""

    sub: str = "1001"
    email: str = "kim@example.org"
    email_verified: bool = True
    login: str = "kim"
    name: str = "Kim Deal"
    # GitHub: more addresses besides the primary one, as (email, verified).
    other_emails: list[tuple[str, bool]] = field(default_factory=list)

    __test__ = False  # not a pytest test class


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: TestUser
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class OAuthProvider:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.user = TestUser()
        self.deny = False  # the user presses "cancel"
        self.id_token_key: RSAKey | None = None  # sign with another key than the JWKS's
        self.id_token_nonce: str | None = None  # put another nonce in the ID token
        self.authorize_requests: list[dict[str, str]] = []
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
        self._codes: dict[str, AuthorizationCode] = {}
        self._tokens: dict[str, TestUser] = {}
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    def reset(self) -> None:
        self.user = TestUser()
        self.deny = False
        self.id_token_key = None
        self.id_token_nonce = None
        self.authorize_requests.clear()

    def register_app(self, app_base_url: str) -> None:
        """Allow the app at ``app_base_url`` as the redirect target of both clients."""
        for (client_id, secret), name in ((GOOGLE_CLIENT, "google"), (GITHUB_CLIENT, "github")):
            self._clients[client_id] = Client(
                client_id, secret, [f"{app_base_url}/auth/{name}/callback"]
            )

    def settings(self) -> dict[str, str]:
        """Backline settings that point both providers here."""
        return {
            "google_client_id": GOOGLE_CLIENT[0],
            "google_client_secret": GOOGLE_CLIENT[1],
            "google_discovery_url": f"{self.url}/.well-known/openid-configuration",
            "github_client_id": GITHUB_CLIENT[0],
            "github_client_secret": GITHUB_CLIENT[1],
            "github_authorize_url": f"{self.url}/login/oauth/authorize",
            "github_token_url": f"{self.url}/login/oauth/access_token",
            "github_api_url": f"{self.url}/api/",
        }

    # -- running -------------------------------------------------------------------

    def start(self) -> None:
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(5)
            self._server = None

    @contextmanager
    def down(self) -> Iterator[None]:
        """Nothing listens on the provider's port meanwhile (connection refused)."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    # -- the Flask app -------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("oauth-test-provider")
        server = AuthorizationServer(app, query_client=self._clients.get, save_token=self._save)
        server.register_grant(
            _code_grant(self),
            [CodeChallenge(required=True), _openid_code(self)],
        )

        def authorize() -> Any:
            self.authorize_requests.append(dict(request.args))
            # Stricter than CodeChallenge(required=True), which lets confidential
            # clients skip PKCE: every client here must send an S256 challenge.
            if not request.args.get("code_challenge"):
                abort(400, "code_challenge required")
            if request.args.get("code_challenge_method") != "S256":
                abort(400, "S256 required")
            user = None if self.deny else self.user
            grant = server.get_consent_grant(end_user=user)
            return server.create_authorization_response(grant_user=user, grant=grant)

        def token() -> Any:
            return server.create_token_response()

        app.add_url_rule("/oidc/authorize", "oidc_authorize", authorize)
        app.add_url_rule("/login/oauth/authorize", "github_authorize", authorize)
        app.add_url_rule("/oidc/token", "oidc_token", token, methods=["POST"])
        app.add_url_rule("/login/oauth/access_token", "github_token", token, methods=["POST"])

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify(
                issuer=self.url,
                authorization_endpoint=f"{self.url}/oidc/authorize",
                token_endpoint=f"{self.url}/oidc/token",
                jwks_uri=f"{self.url}/oidc/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                code_challenge_methods_supported=["S256"],
                scopes_supported=["openid", "email", "profile"],
            )

        @app.get("/oidc/jwks")
        def jwks() -> Any:
            return jsonify(keys=[self.key.as_dict(private=False)])

        @app.get("/api/user")
        def github_user() -> Any:
            user = self._bearer_user()
            return jsonify(
                id=int(user.sub),
                login=user.login,
                name=user.name,
                email=None,  # GitHub hides it unless public: /user/emails has it
                avatar_url=f"{self.url}/avatars/{user.sub}.png",
            )

        @app.get("/api/user/emails")
        def github_emails() -> Any:
            user = self._bearer_user()
            emails = [(address, verified, False) for address, verified in user.other_emails]
            emails.insert(0, (user.email, user.email_verified, True))
            return jsonify(
                [
                    {"email": address, "verified": verified, "primary": primary}
                    for address, verified, primary in emails
                ]
            )

        return app

    def _bearer_user(self) -> TestUser:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        user = self._tokens.get(value) if scheme.lower() in ("bearer", "token") else None
        if user is None:
            abort(401)
        return user

    def _save(self, token: dict[str, Any], oauth_request: Any) -> None:
        with self._lock:
            self._tokens[token["access_token"]] = oauth_request.user

    def save_code(self, code: str, oauth_request: Any) -> None:
        data = oauth_request.payload.data
        with self._lock:
            self._codes[code] = AuthorizationCode(
                code=code,
                client_id=oauth_request.client.get_client_id(),
                redirect_uri=oauth_request.payload.redirect_uri,
                scope=oauth_request.payload.scope,
                user=oauth_request.user,
                nonce=self.id_token_nonce or data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            )

    def find_code(self, code: str, client: Client) -> AuthorizationCode | None:
        found = self._codes.get(code)
        return found if found and found.client_id == client.get_client_id() else None

    def drop_code(self, code: AuthorizationCode) -> None:
        with self._lock:
            self._codes.pop(code.code, None)


def _code_grant(provider: OAuthProvider) -> type[grants.AuthorizationCodeGrant]:
    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code: str, request: Any) -> None:
            provider.save_code(code, request)

        def query_authorization_code(self, code: str, client: Any) -> Any:
            return provider.find_code(code, client)

        def delete_authorization_code(self, authorization_code: Any) -> None:
            provider.drop_code(authorization_code)

        def authenticate_user(self, authorization_code: Any) -> TestUser:
            return authorization_code.user

    return CodeGrant


def _openid_code(provider: OAuthProvider) -> OpenIDCode:
    class Code(OpenIDCode):
        def resolve_client_private_key(self, client: Any) -> RSAKey:
            return provider.id_token_key or provider.key

        def get_client_claims(self, client: Any) -> dict[str, Any]:
            return {"iss": provider.url, "aud": [client.get_client_id()]}

        def get_encode_header(self, client: Any) -> dict[str, str]:
            return {"alg": "RS256", "kid": "test-key"}

        def exists_nonce(self, nonce: str, request: Any) -> bool:
            return False

        def generate_user_info(self, user: TestUser, scope: str) -> UserInfo:
            return UserInfo(
                sub=user.sub,
                email=user.email,
                email_verified=user.email_verified,
                name=user.name,
                picture=f"{provider.url}/avatars/{user.sub}.png",
            )

    return Code(require_nonce=True)
