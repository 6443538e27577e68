"""Sign-in through Google (OpenID Connect) and GitHub (OAuth 2).

The browser goes ``/auth/<provider>/login`` → the provider → ``/auth/<provider>/callback``
→ the SPA's ``redirect`` with a one-time code, which the SPA trades for tokens through
the ``exchangeLoginCode`` mutation (tokens never appear in a URL)::

    SPA ──► /auth/github/login?redirect=… ──► github.com (consent)
                 │ state, PKCE verifier, nonce         │ ?code&state
                 ▼ in a signed session cookie          ▼
    SPA ◄── 302 redirect?code=… ◄── /auth/github/callback (token exchange, profile,
     │                                   find / create / link the user, login code)
     └─► exchangeLoginCode(code) ──► AuthPayload (a new refresh-token family)

providers.py  settings → the configured providers, and how each says who someone is
service.py    find, create or link the user of a provider profile; unlink
codes.py      one-time login codes;  tickets.py  signed link tickets
redirects.py  the allow-list of places a sign-in may return to
routes.py     the /auth/* routes;    graphql.py  authProviders and the mutations
"""
