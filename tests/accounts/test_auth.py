"""Registration, login, rotating refresh tokens, logout."""

from __future__ import annotations

from sqlalchemy import func, select

from backend.accounts.models import RefreshToken, User
from tests.graphql_client import REGISTER, gql, register

LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) { accessToken refreshToken user { handle } }
}
"""
REFRESH = "mutation R($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }"
VIEWER = "{ viewer { handle email } }"


async def test_register_then_viewer(client):
    token, _ = await register(client, "alice")
    viewer = (await gql(client, VIEWER, token=token)).ok()["viewer"]
    assert viewer == {"handle": "alice", "email": "alice@example.org"}
    assert (await gql(client, VIEWER)).ok()["viewer"] is None


async def test_register_shows_own_email_in_payload(client):
    result = await gql(
        client,
        REGISTER,
        {"input": {"email": "Bob@Example.org", "password": "longenough", "handle": "bob"}},
    )
    assert result.ok()["register"]["user"]["email"] == "bob@example.org"


async def test_duplicate_registration_is_refused_and_writes_nothing(client, session_factory):
    await register(client, "alice")
    result = await gql(
        client,
        REGISTER,
        {"input": {"email": "ALICE@example.org", "password": "longenough", "handle": "alice2"}},
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["field"] == "email"
    async with session_factory() as db:
        assert await db.scalar(select(func.count()).select_from(User)) == 1
        assert await db.scalar(select(func.count()).select_from(RefreshToken)) == 1


async def test_login_with_wrong_password_does_not_say_which_part_was_wrong(client):
    await register(client, "alice")
    wrong_password = await gql(
        client, LOGIN, {"email": "alice@example.org", "password": "nope nope"}
    )
    unknown_email = await gql(client, LOGIN, {"email": "zed@example.org", "password": "x" * 9})
    assert wrong_password.codes == unknown_email.codes == ["UNAUTHENTICATED"]
    assert wrong_password.errors[0]["message"] == unknown_email.errors[0]["message"]
    ok = await gql(client, LOGIN, {"email": "Alice@Example.org ", "password": "correct horse"})
    assert ok.ok()["login"]["user"]["handle"] == "alice"


async def test_refresh_rotates_and_reuse_revokes_the_family(client):
    await register(client, "alice")
    login = (
        await gql(client, LOGIN, {"email": "alice@example.org", "password": "correct horse"})
    ).ok()["login"]
    first = login["refreshToken"]
    second = (await gql(client, REFRESH, {"t": first})).ok()["refreshToken"]["refreshToken"]
    assert second != first
    # The used token comes back: someone copied it. The whole family dies...
    reuse = await gql(client, REFRESH, {"t": first})
    assert reuse.codes == ["UNAUTHENTICATED"]
    # ...including the newest token, which the thief might hold.
    assert (await gql(client, REFRESH, {"t": second})).codes == ["UNAUTHENTICATED"]


async def test_logout_kills_only_that_login(client):
    await register(client, "alice")
    creds = {"email": "alice@example.org", "password": "correct horse"}
    phone = (await gql(client, LOGIN, creds)).ok()["login"]["refreshToken"]
    laptop = (await gql(client, LOGIN, creds)).ok()["login"]["refreshToken"]
    logout = "mutation L($t: String!) { logout(refreshToken: $t) }"
    assert (await gql(client, logout, {"t": phone})).ok()["logout"] is True
    assert (await gql(client, REFRESH, {"t": phone})).codes == ["UNAUTHENTICATED"]
    assert (await gql(client, REFRESH, {"t": laptop})).ok()["refreshToken"]["accessToken"]


async def test_logout_everywhere(client):
    token, _ = await register(client, "alice")
    creds = {"email": "alice@example.org", "password": "correct horse"}
    refresh = (await gql(client, LOGIN, creds)).ok()["login"]["refreshToken"]
    assert (await gql(client, "mutation { logoutEverywhere }", token=token)).ok()
    assert (await gql(client, REFRESH, {"t": refresh})).codes == ["UNAUTHENTICATED"]
    assert (await gql(client, "mutation { logoutEverywhere }")).codes == ["UNAUTHENTICATED"]


async def test_bad_and_expired_tokens_are_unauthenticated(client, app_and_engine):
    import jwt

    from backend.accounts.tokens import ALGORITHM, AUDIENCE

    app, _ = app_and_engine
    key = app.state.settings.resolved_secret_key
    expired = jwt.encode({"sub": "1", "exp": 1, "aud": AUDIENCE}, key, algorithm=ALGORITHM)
    forged = jwt.encode(
        {"sub": "1", "exp": 2**40, "aud": AUDIENCE},
        "another-secret-key-of-enough-length!!",
        algorithm=ALGORITHM,
    )
    for token in (expired, forged, "not-a-jwt"):
        result = await gql(client, VIEWER, token=token)
        assert result.codes == ["UNAUTHENTICATED"], token
    assert "expired" in (await gql(client, VIEWER, token=expired)).errors[0]["message"]
