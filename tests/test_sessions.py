"""Sessions we start are rows: signing out ends one at once, as cookie and as bearer, and nothing else."""

import time
import uuid
from typing import Any

import jwt
import psycopg
import pytest

from echo_control import auth, db
from echo_control.errors import Unauthorized

FORM = {"Origin": "http://localhost", "Host": "localhost", "Content-Type": "application/x-www-form-urlencoded"}


def sign_out(api: Any, token: str) -> Any:
    return api.call("POST", "/sign-out", data="", headers={**FORM, "Cookie": f"echo_session={token}"})


def test_signing_out_refuses_the_token_as_cookie_and_as_bearer(api: Any, user: Any) -> None:
    # Given a signed-in user whose token works as a bearer and as the dashboard's cookie
    assert user.call("GET", "/api/me").status == 200
    assert api.call("GET", "/dashboard", headers={"Cookie": f"echo_session={user.token}"}).status == 200

    # When they sign out
    out = sign_out(api, user.token)
    assert out.status == 303 and out.headers["Location"] == "/sign-in"
    assert "echo_session=;" in out.headers["Set-Cookie"] and "Max-Age=0" in out.headers["Set-Cookie"]

    # Then the same token, kept by whoever copied it, is refused both ways
    me = user.call("GET", "/api/me")
    assert me.status == 401 and me.error_code == "unauthorized"
    page = api.call("GET", "/dashboard", headers={"Cookie": f"echo_session={user.token}"})
    assert page.status == 303 and page.headers["Location"].startswith("/sign-in")


def test_signing_out_ends_only_that_session(api: Any) -> None:
    email = f"two-{uuid.uuid4().hex[:8]}@example.com"
    laptop, phone = api.sign_in(email), api.sign_in(email)
    assert laptop.user["id"] == phone.user["id"]
    sign_out(api, laptop.token)
    assert laptop.call("GET", "/api/me").status == 401
    assert phone.call("GET", "/api/me").status == 200


def test_a_signed_token_without_a_live_session_is_refused(api: Any, user: Any, database_url: str) -> None:
    claims = jwt.decode(user.token, options={"verify_signature": False})
    # A correctly signed token that names no session (as every token before sessions were rows) …
    without_sid = {k: v for k, v in claims.items() if k != "sid"}
    forged = jwt.encode(without_sid, auth.dev_signing_key(), algorithm="RS256")
    assert api.call("GET", "/api/me", forged).status == 401
    # … or a session that does not exist …
    unknown = jwt.encode({**claims, "sid": str(uuid.uuid4())}, auth.dev_signing_key(), algorithm="RS256")
    assert api.call("GET", "/api/me", unknown).status == 401
    # … or one whose time is up on the server, though the token itself has hours left
    assert user.call("GET", "/api/me").status == 200
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = %s", [claims["sid"]])
    assert claims["exp"] > time.time() + 3600
    assert user.call("GET", "/api/me").status == 401


def test_a_session_cannot_be_moved_to_another_user(api: Any, user: Any, other_user: Any) -> None:
    # The session row says whose it is: a token naming someone else's session as its own sub still acts as that
    # session's user, never as the sub (the sub is not trusted on its own).
    theirs = jwt.decode(other_user.token, options={"verify_signature": False})["sid"]
    claims = {**jwt.decode(user.token, options={"verify_signature": False}), "sid": theirs}
    token = jwt.encode(claims, auth.dev_signing_key(), algorithm="RS256")
    assert api.call("GET", "/api/me", token).body["user"]["id"] == other_user.user["id"]


def test_an_opaque_session_token_works_until_it_is_ended(api: Any, user: Any, database_url: str) -> None:
    token = auth.start_session(uuid.UUID(user.user["id"]))
    assert token.startswith(auth.SESSION_TOKEN_PREFIX)
    assert api.call("GET", "/api/me", token).body["user"]["id"] == user.user["id"]
    # Only the hash is stored: the table alone signs nobody in.
    with psycopg.connect(database_url) as conn:
        stored = [bytes(r[0]) for r in conn.execute("SELECT token_hash FROM sessions WHERE token_hash IS NOT NULL")]
    assert all(token.encode() not in value for value in stored)
    # A guessed or altered token is refused like an ended one.
    assert api.call("GET", "/api/me", token[:-1] + ("A" if token[-1] != "A" else "B")).status == 401
    out = sign_out(api, token)
    assert out.status == 303
    assert api.call("GET", "/api/me", token).status == 401
    assert user.call("GET", "/api/me").status == 200  # the user's other session goes on


def test_signing_out_without_a_session_or_with_a_bad_one_just_clears_the_cookie(api: Any) -> None:
    for cookie in ("", "echo_session=not-a-token", f"echo_session={auth.SESSION_TOKEN_PREFIX}nothing"):
        out = api.call("POST", "/sign-out", data="", headers={**FORM, "Cookie": cookie})
        assert out.status == 303 and "Max-Age=0" in out.headers["Set-Cookie"]


def test_ending_a_session_twice_or_an_unknown_one_changes_nothing(user: Any) -> None:
    auth.end_session(user.token)
    auth.end_session(user.token)
    with pytest.raises(Unauthorized):
        auth.authenticate(f"Bearer {user.token}")
    assert db.session_user(uuid.uuid4()) is None
