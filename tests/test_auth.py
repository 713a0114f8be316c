"""Authentication with real RS256 signatures against a JWKS, and API keys end to end."""

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from echo_control import auth, keys
from echo_control.errors import Unauthorized


def _dev_token(**overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "echo-control-dev",
        "aud": "echo-control",
        "sub": f"dev_{uuid.uuid4().hex}@example.com",
        "email": f"{uuid.uuid4().hex}@example.com",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, auth.dev_signing_key(), algorithm="RS256")


def test_a_dev_session_signs_in_and_the_user_is_created_on_first_sight(api) -> None:
    email = f"first-{uuid.uuid4().hex[:8]}@Example.com"
    reply = api.call("POST", "/api/dev/session", json_body={"email": email})
    assert reply.status == 200
    me = api.call("GET", "/api/me", reply.body["token"])
    assert me.status == 200
    assert me.body["user"]["email"] == email.lower()
    assert me.body["authType"] == "user" and me.body["user"]["role"] == "user"
    again = api.call("POST", "/api/dev/session", json_body={"email": email.upper()})
    assert again.body["user"]["id"] == reply.body["user"]["id"]


def test_admin_emails_get_the_admin_role(admin) -> None:
    assert admin.call("GET", "/api/me").body["user"]["role"] == "admin"


@pytest.mark.parametrize(
    ("case", "token_factory"),
    [
        ("expired", lambda: _dev_token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)),
        ("wrong audience", lambda: _dev_token(aud="someone-else")),
        ("wrong issuer", lambda: _dev_token(iss="https://evil.example")),
        ("no expiry", lambda: _dev_token(exp=None)),
        (
            "forged key",
            lambda: jwt.encode(
                {
                    "iss": "echo-control-dev",
                    "aud": "echo-control",
                    "sub": "dev_x",
                    "iat": int(time.time()),
                    "exp": int(time.time()) + 600,
                },
                rsa.generate_private_key(public_exponent=65537, key_size=2048),
                algorithm="RS256",
            ),
        ),
        (
            "alg none",
            lambda: jwt.encode(
                {
                    "iss": "echo-control-dev",
                    "aud": "echo-control",
                    "sub": "dev_x",
                    "iat": int(time.time()),
                    "exp": int(time.time()) + 600,
                },
                None,
                algorithm="none",
            ),
        ),
        (
            "HS256 with the public key",
            lambda: jwt.encode(
                {
                    "iss": "echo-control-dev",
                    "aud": "echo-control",
                    "sub": "dev_x",
                    "iat": int(time.time()),
                    "exp": int(time.time()) + 600,
                },
                "not-the-key-but-long-enough-for-hs256!",
                algorithm="HS256",
            ),
        ),
        ("garbage", lambda: "not.a.jwt"),
    ],
)
def test_bad_session_tokens_are_401(api, case: str, token_factory) -> None:
    reply = api.call("GET", "/api/me", token_factory())
    assert reply.status == 401, case
    assert reply.error_code == "unauthorized"


def test_missing_or_non_bearer_credentials_are_401(api) -> None:
    assert api.call("GET", "/api/echo-apps").status == 401
    assert api.call("GET", "/api/echo-apps", headers={"Authorization": "Basic abc"}).status == 401


# --- Clerk mode: a JWKS served over HTTP on loopback, as Clerk serves it ------------------------------


@pytest.fixture
def clerk_issuer(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[rsa.RSAPrivateKey, str]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public.update({"kid": "clerk-test", "use": "sig", "alg": "RS256"})
    body = json.dumps({"keys": [public]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    issuer = "https://clerk.example.test"
    monkeypatch.setenv("ECHO_AUTH_MODE", "clerk")
    monkeypatch.setenv("ECHO_JWKS_URL", f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json")
    monkeypatch.setenv("ECHO_JWT_ISSUER", issuer)
    monkeypatch.setenv("ECHO_CLERK_SIGN_IN_URL", "https://accounts.example.test/sign-in")
    yield key, issuer
    server.shutdown()


def _clerk_token(key: rsa.RSAPrivateKey, issuer: str, sub: str, **extra: Any) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "aud": "echo-control", "sub": sub, "iat": now, "exp": now + 300, **extra}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "clerk-test"})


def test_clerk_tokens_verify_against_the_jwks_and_create_the_user(api, clerk_issuer) -> None:
    key, issuer = clerk_issuer
    sub = f"user_{uuid.uuid4().hex}"
    token = _clerk_token(key, issuer, sub, email=f"{sub}@example.com")
    me = api.call("GET", "/api/me", token)
    assert me.status == 200, me.body
    assert me.body["user"]["email"] == f"{sub}@example.com"
    # dev sign-in does not exist in clerk mode
    assert api.call("POST", "/api/dev/session", json_body={"email": "x@example.com"}).status == 404
    # and a dev-signed token is not accepted by a clerk deployment
    assert api.call("GET", "/api/me", _dev_token()).status == 401
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert api.call("GET", "/api/me", _clerk_token(other, issuer, sub)).status == 401


# --- API keys ----------------------------------------------------------------------------------------


def test_generated_keys_are_well_formed_and_a_changed_character_is_not() -> None:
    key = keys.generate_key()
    assert key.startswith("echo_") and len(key) == keys.KEY_LENGTH
    assert keys.is_well_formed(key)
    flipped = key[:20] + ("A" if key[20] != "A" else "B") + key[21:]
    assert not keys.is_well_formed(flipped)
    assert not keys.is_well_formed(key[:-1])
    assert len({keys.generate_key() for _ in range(1000)}) == 1000


def test_a_malformed_key_is_rejected_without_touching_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_database(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("database was queried")

    monkeypatch.setattr("echo_control.db.active_api_key", no_database)
    with pytest.raises(Unauthorized):
        auth.authenticate("Bearer echo_" + "x" * 49)
    assert keys.validate("echo_nope").valid is False


def test_key_lifecycle_create_use_list_revoke(user, api) -> None:
    app = user.create_app()
    created = user.create_key(app["id"], name="prod")
    key = created["key"]
    assert created["keyPrefix"] == key[:12] and created["last4"] == key[-4:]
    me = api.call("GET", "/api/me", key)
    assert me.status == 200
    assert me.body["authType"] == "apiKey" and me.body["echoApp"]["id"] == app["id"]
    listed = user.call("GET", "/api/api-keys").body["apiKeys"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    check = api.call("POST", "/api/validate-api-key", json_body={"apiKey": key})
    assert check.body == {
        "valid": True,
        "userId": user.user["id"],
        "echoAppId": app["id"],
        "balance": "0.000000",
        "held": "0.000000",
        "available": "0.000000",
        "spendable": "0.000000",
        "reason": None,
        "resetsAt": None,
        "user": {"id": user.user["id"], "email": user.user["email"], "name": user.user.get("name")},
        "echoApp": {"id": app["id"], "name": app["name"]},
    }

    assert user.call("DELETE", f"/api/api-keys/{created['id']}").status == 200
    assert api.call("GET", "/api/me", key).status == 401  # the very next request
    assert api.call("POST", "/api/validate-api-key", json_body={"apiKey": key}).body["valid"] is False
    assert user.call("GET", "/api/api-keys").body["apiKeys"][0]["isActive"] is False


def test_an_expired_key_is_refused(user, api, database_url) -> None:
    app = user.create_app()
    created = user.create_key(app["id"], expiresAt="2099-01-01T00:00:00Z")
    assert api.call("GET", "/api/me", created["key"]).status == 200
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = %s", [created["id"]])
    assert api.call("GET", "/api/me", created["key"]).status == 401
    assert (
        user.call("POST", "/api/api-keys", {"echoAppId": app["id"], "expiresAt": "2001-01-01T00:00:00Z"}).status == 422
    )


def test_a_key_of_a_deactivated_app_stops_working(user, api) -> None:
    app = user.create_app()
    key = user.create_key(app["id"])["key"]
    assert user.call("PUT", f"/api/echo-apps/{app['id']}", {"isActive": False}).status == 200
    assert api.call("GET", "/api/me", key).status == 401


def test_no_plaintext_key_is_stored_in_any_table(user, database_url) -> None:
    app = user.create_app()
    key = user.create_key(app["id"])["key"]
    secret_part = key[12:-4]
    with psycopg.connect(database_url) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            hits = conn.execute(
                psycopg.sql.SQL("SELECT count(*) FROM {} t WHERE t::text LIKE %s").format(
                    psycopg.sql.Identifier(table)
                ),
                [f"%{secret_part}%"],
            ).fetchone()
            assert hits == (0,), table


def test_wrong_keys_are_not_valid_and_answer_no_slower_than_right_ones(api, key_holder) -> None:
    good = key_holder.key
    bad = keys.generate_key()  # well-formed, unknown: the slowest kind of wrong key
    for candidate in (bad, "echo_short", "", "x" * 200):
        reply = api.call("POST", "/api/validate-api-key", json_body={"apiKey": candidate})
        assert reply.status == 200 and reply.body["valid"] is False
        assert {v for k, v in reply.body.items() if k != "valid"} == {None}  # nothing about anyone

    def median_seconds(candidate: str) -> float:
        times = []
        for _ in range(15):
            start = time.perf_counter()
            api.call("POST", "/api/validate-api-key", json_body={"apiKey": candidate})
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    # Both do one indexed lookup by hash; a wrong key must not take measurably longer.
    assert median_seconds(bad) < median_seconds(good) * 1.5 + 0.002


def test_concurrent_requests_in_one_process_each_see_their_own_caller(api) -> None:
    """The local runner serves requests on threads of one process; Powertools keeps the current request in class
    attributes, which the runner makes per thread: no request may read another's authorizer context."""
    from concurrent.futures import ThreadPoolExecutor

    from conftest import Api, credit

    holders = []
    for _ in range(8):
        session = api.sign_in()
        app = session.create_app()
        credit(session.user["id"], "10")
        holders.append((session.user["id"], session.create_key(app["id"])["key"]))
    call = {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 5, "cost": "0.000001", "metadata": {"n": 0}}

    def metered_as_myself(n: int) -> bool:
        user_id, key = holders[n % len(holders)]
        reply = Api(api.client.application).call("POST", "/api/transactions", key, {**call, "metadata": {"n": n}})
        return reply.body["userId"] == user_id and reply.body["metadata"] == {"n": n}

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert all(pool.map(metered_as_myself, range(400)))
