"""Sign in with Echo: OAuth 2.1 authorization code with PKCE, through the local gateway as HTTP requests arrive.

The consent page, codes (single use, 60 s, bound to client, redirect URI and PKCE challenge), refresh token rotation
with reuse detection, RFC 7009 revocation, disconnecting, and access tokens acting as the grant's API key on the
metering routes under the same money rules and limits."""

import base64
import hashlib
import re
import secrets
import threading
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from conftest import Api, Reply, Session, credit

from tests.invariants import markup_not_earned, unreconciled_balances, unreconciled_earnings

REDIRECT = "https://app.example.com/auth/echo/callback"
CALL = {"model": "gpt-4o", "inputTokens": 100, "outputTokens": 50, "cost": "0.010000"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(autouse=True)
def reconciled() -> Any:
    yield
    assert unreconciled_balances() == []
    assert unreconciled_earnings() == []
    assert markup_not_earned() == []


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def cookie(session: Session) -> dict[str, str]:
    return {"Cookie": f"echo_session={session.token}"}


def authorize_query(app_id: str, challenge: str, **overrides: str) -> dict[str, str]:
    query = {
        "response_type": "code",
        "client_id": app_id,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "xyz-" + secrets.token_hex(4),
    }
    query.update(overrides)
    return {name: value for name, value in query.items() if value != ""}


def decide(person: Session, query: dict[str, str], decision: str = "allow") -> Reply:
    """The consent form's post, as the page sends it (same origin, the person's session cookie)."""
    headers = {**FORM, **cookie(person), "Origin": "http://localhost"}
    return person.api.call("POST", "/oauth/authorize", data=urlencode({**query, "decision": decision}), headers=headers)


def redirect_params(reply: Reply) -> dict[str, str]:
    assert reply.status in (302, 303), (reply.status, reply.body)
    location = reply.headers["Location"]
    assert location.startswith(REDIRECT + "?"), location
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def token_request(api: Api, **fields: str) -> Reply:
    return api.call("POST", "/oauth/token", data=urlencode(fields), headers=FORM)


def exchange(api: Api, app_id: str, code: str, verifier: str, redirect: str = REDIRECT) -> Reply:
    return token_request(
        api, grant_type="authorization_code", code=code, redirect_uri=redirect, client_id=app_id, code_verifier=verifier
    )


def refresh(api: Api, app_id: str, refresh_token: str) -> Reply:
    return token_request(api, grant_type="refresh_token", refresh_token=refresh_token, client_id=app_id)


@pytest.fixture
def owner(api: Api) -> Session:
    return api.sign_in()


@pytest.fixture
def app(owner: Session) -> dict[str, Any]:
    """An app open to customers, with one registered redirect URI."""
    created = owner.create_app("Chat helper", description="Answers questions", markup="1.5", acceptsCustomers=True)
    reply = owner.call(
        "PUT", f"/api/echo-apps/{created['id']}", {"redirectUris": [REDIRECT, "http://localhost:8765/cb"]}
    )
    assert reply.status == 200, reply.body
    return reply.body


@pytest.fixture
def person(api: Api) -> Session:
    """Someone who will sign in to the app with Echo, with $1 of credit."""
    signed_in = api.sign_in()
    credit(signed_in.user["id"], "1")
    return signed_in


def code_for(person: Session, app_id: str) -> tuple[str, str]:
    """Consent given: (code, verifier)."""
    verifier, challenge = pkce()
    query = authorize_query(app_id, challenge)
    params = redirect_params(decide(person, query))
    assert params["state"] == query["state"]
    return params["code"], verifier


def tokens_for(api: Api, person: Session, app_id: str) -> dict[str, Any]:
    code, verifier = code_for(person, app_id)
    reply = exchange(api, app_id, code, verifier)
    assert reply.status == 200, reply.body
    return dict(reply.body)


def works(api: Api, access_token: str) -> bool:
    """Whether the access token is accepted on a metering route right now."""
    return api.call("GET", "/api/balance", access_token).status == 200


# --- registering redirect URIs ---------------------------------------------------------------------------------


def test_redirect_uris_are_registered_exactly_and_only_https_or_loopback_http(
    owner: Session, other_user: Session
) -> None:
    created = owner.create_app("Registered")
    assert created["redirectUris"] == []
    path = f"/api/echo-apps/{created['id']}"
    good = ["https://app.example.com/cb?x=1", "http://localhost:8080/cb", "http://127.0.0.1/cb"]
    reply = owner.call("PUT", path, {"redirectUris": good})
    assert reply.status == 200 and reply.body["redirectUris"] == good
    assert owner.call("GET", path).body["redirectUris"] == good
    for bad in (
        ["http://app.example.com/cb"],  # plain http off the loopback
        ["https://app.example.com/cb#fragment"],
        ["https://*.example.com/cb"],
        ["https://user@app.example.com/cb"],
        ["http://localhost.evil.example/cb"],
        ["javascript:alert(1)"],
        ["https://app.example.com:65536/cb"],
        ["https://app.example.com/caf\u00e9"],  # URIs are ASCII (RFC 3986): percent-encode the rest
        ["https://[::1]/cb"],
        ["https://a.example/cb", "https://a.example/cb"],  # twice
        [f"https://a.example/{n}" for n in range(11)],  # more than 10
        None,
    ):
        refused = owner.call("PUT", path, {"redirectUris": bad})
        assert refused.status == 422, (bad, refused.body)
    assert owner.call("GET", path).body["redirectUris"] == good  # nothing changed
    assert other_user.call("PUT", path, {"redirectUris": good}).status == 404
    assert owner.call("PUT", path, {"redirectUris": []}).body["redirectUris"] == []


# --- the authorization endpoint ----------------------------------------------------------------------------------


def test_the_consent_page_names_the_app_its_owner_markup_and_what_it_may_do(
    api: Api, app: dict[str, Any], owner: Session, person: Session
) -> None:
    _, challenge = pkce()
    query = authorize_query(app["id"], challenge)
    reply = api.call("GET", "/oauth/authorize", query=query, headers=cookie(person))
    assert reply.status == 200, reply.body
    page = reply.body
    assert "Chat helper" in page and owner.user["email"] in page and "1.5" in page
    assert "spend from your Echo balance" in page and "read your balance" in page
    for name, value in query.items():  # the form carries the request back
        assert f'name="{name}" value="{value}"' in page
    # the form's redirect to the app's own origin is allowed, and only that one
    assert "form-action 'self' https://app.example.com" in reply.headers["Content-Security-Policy"]


def test_without_a_session_the_person_signs_in_first_and_comes_back_to_the_same_request(
    api: Api, app: dict[str, Any]
) -> None:
    _, challenge = pkce()
    query = authorize_query(app["id"], challenge)
    reply = api.call("GET", "/oauth/authorize", query=query)
    assert reply.status == 303
    location = urlsplit(reply.headers["Location"])
    assert location.path == "/sign-in"
    back = parse_qs(location.query)["next"][0]
    assert urlsplit(back).path == "/oauth/authorize"
    assert {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()} == query
    sign_in_page = api.call("GET", "/sign-in", query={"next": back})
    assert sign_in_page.status == 200 and f'value="{back.replace("&", "&amp;")}"' in sign_in_page.body


@pytest.mark.parametrize(
    "change",
    [
        {"redirect_uri": "https://evil.example.com/cb"},
        {"redirect_uri": REDIRECT + "/extra"},  # exact match only
        {"redirect_uri": ""},
        {"client_id": str(uuid.uuid4())},
        {"client_id": "not-an-id"},
        {"client_id": ""},
    ],
)
def test_an_unregistered_redirect_uri_or_unknown_client_is_an_error_page_never_a_redirect(
    api: Api, app: dict[str, Any], person: Session, change: dict[str, str]
) -> None:
    _, challenge = pkce()
    query = authorize_query(app["id"], challenge, **change)
    for reply in (
        api.call("GET", "/oauth/authorize", query=query, headers=cookie(person)),
        decide(person, query),
    ):
        assert reply.status == 400, reply.body
        assert "Location" not in reply.headers
        assert "<html" in reply.body


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": ""}, "invalid_request"),  # plain by default: refused as well
        ({"code_challenge": "", "code_challenge_method": ""}, "invalid_request"),  # PKCE is required
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
def test_a_request_without_s256_pkce_goes_back_to_the_app_with_an_error(
    api: Api, app: dict[str, Any], person: Session, change: dict[str, str], error: str
) -> None:
    _, challenge = pkce()
    query = authorize_query(app["id"], challenge, **change)
    reply = api.call("GET", "/oauth/authorize", query=query, headers=cookie(person))
    params = redirect_params(reply)
    assert params["error"] == error and params["state"] == query["state"] and "code" not in params


def test_deny_goes_back_with_access_denied_and_gives_nothing(api: Api, app: dict[str, Any], person: Session) -> None:
    _, challenge = pkce()
    query = authorize_query(app["id"], challenge)
    params = redirect_params(decide(person, query, "deny"))
    assert params["error"] == "access_denied" and params["state"] == query["state"] and "code" not in params
    assert person.call("GET", "/api/api-keys").body["apiKeys"] == []  # no grant was made
    assert app["id"] not in {a["id"] for a in person.call("GET", "/api/echo-apps").body["echoApps"]}


def test_a_decision_from_another_site_is_refused(api: Api, app: dict[str, Any], person: Session) -> None:
    _, challenge = pkce()
    query = authorize_query(app["id"], challenge)
    headers = {**FORM, **cookie(person), "Origin": "https://evil.example.com"}
    reply = api.call("POST", "/oauth/authorize", data=urlencode({**query, "decision": "allow"}), headers=headers)
    assert reply.status == 403 and "Location" not in reply.headers


def test_an_app_closed_to_customers_cannot_sign_in_someone_else(api: Api, owner: Session, person: Session) -> None:
    closed = owner.create_app("Closed")
    owner.call("PUT", f"/api/echo-apps/{closed['id']}", {"redirectUris": [REDIRECT]})
    _, challenge = pkce()
    query = authorize_query(closed["id"], challenge)
    page = api.call("GET", "/oauth/authorize", query=query, headers=cookie(person))
    assert page.status == 200 and "not taking new customers" in page.body and 'id="allow"' not in page.body
    assert redirect_params(decide(person, query))["error"] == "access_denied"
    # its owner can
    verifier, challenge = pkce()
    params = redirect_params(decide(owner, authorize_query(closed["id"], challenge)))
    assert exchange(api, closed["id"], params["code"], verifier).status == 200


# --- the token endpoint and the tokens at work --------------------------------------------------------------------


def test_the_whole_flow_a_token_acts_as_the_apps_key_for_that_person(
    api: Api, owner: Session, app: dict[str, Any], person: Session
) -> None:
    tokens = tokens_for(api, person, app["id"])
    assert tokens.keys() == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    access = tokens["access_token"]

    reply = api.call("POST", "/api/transactions", access, CALL)
    assert reply.status == 201, reply.body
    assert reply.body["userId"] == person.user["id"] and reply.body["echoAppId"] == app["id"]
    assert (reply.body["providerCost"], reply.body["markupAmount"], reply.body["cost"]) == (
        "0.010000",
        "0.005000",
        "0.015000",
    )
    assert Decimal(person.call("GET", "/api/balance").body["balance"]) == Decimal("0.985")  # the person paid
    assert Decimal(api.call("GET", "/api/balance", access).body["balance"]) == Decimal("0.985")

    hold = api.call("POST", "/api/holds", access, {"amount": "0.10"})
    assert hold.status == 201, hold.body
    assert api.call("DELETE", f"/api/holds/{hold.body['id']}", access).status == 200

    valid = api.call("POST", "/api/validate-api-key", json_body={"apiKey": access})
    assert valid.status == 200 and valid.body["valid"] is True
    assert valid.body["userId"] == person.user["id"] and valid.body["echoAppId"] == app["id"]
    # the person is now the app's customer, and the owner sees them
    customers = owner.call("GET", f"/api/echo-apps/{app['id']}/customers").body["customers"]
    assert [c["userId"] for c in customers] == [person.user["id"]]
    # the token is no session: management routes stay closed to it
    assert api.call("POST", "/api/echo-apps", access, {"name": "x"}).status == 403
    # tokens are stored only as hashes
    from echo_control import db

    stored = db.connection().execute("SELECT token_hash::text AS h FROM oauth_tokens").fetchall()
    assert not any(tokens["access_token"] in row["h"] or tokens["refresh_token"] in row["h"] for row in stored)


def test_access_tokens_share_the_keys_rate_limit(
    api: Api, app: dict[str, Any], person: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    access = tokens_for(api, person, app["id"])["access_token"]
    monkeypatch.setenv("ECHO_RATE_LIMIT_PER_MINUTE", "2")
    statuses = [api.call("GET", "/api/balance", access).status for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_a_second_use_of_a_code_fails_and_revokes_what_the_first_gave(
    api: Api, app: dict[str, Any], person: Session
) -> None:
    code, verifier = code_for(person, app["id"])
    first = exchange(api, app["id"], code, verifier)
    assert first.status == 200 and works(api, first.body["access_token"])
    again = exchange(api, app["id"], code, verifier)
    assert again.status == 400 and again.body["error"] == "invalid_grant"
    assert not works(api, first.body["access_token"])
    assert refresh(api, app["id"], first.body["refresh_token"]).body["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "wrong",
    [
        {"code_verifier": "x" * 43},  # another verifier
        {"code_verifier": ""},
        {"redirect_uri": "http://localhost:8765/cb"},  # registered, but not the one the code was sent to
        {"redirect_uri": ""},
        {"client_id": "other app"},
        {"code": "not-a-code"},
    ],
)
def test_a_code_is_bound_to_its_verifier_redirect_uri_and_client(
    api: Api, owner: Session, app: dict[str, Any], person: Session, wrong: dict[str, str]
) -> None:
    code, verifier = code_for(person, app["id"])
    fields = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": app["id"],
        "code_verifier": verifier,
    }
    if wrong.get("client_id") == "other app":
        other = owner.create_app("Other", acceptsCustomers=True)
        owner.call("PUT", f"/api/echo-apps/{other['id']}", {"redirectUris": [REDIRECT]})
        wrong = {"client_id": other["id"]}
    reply = token_request(api, **{k: v for k, v in {**fields, **wrong}.items() if v})
    assert reply.status == 400
    assert reply.body["error"] in ("invalid_grant", "invalid_request"), reply.body
    assert reply.headers["Cache-Control"] == "no-store"


def test_a_code_lives_60_seconds(api: Api, app: dict[str, Any], person: Session) -> None:
    from echo_control import db

    code, verifier = code_for(person, app["id"])
    row = db.connection().execute("SELECT expires_at - now() AS left FROM oauth_codes ORDER BY expires_at DESC LIMIT 1")
    left = row.fetchone()["left"].total_seconds()
    assert 55 < left <= 60
    with db.transaction() as conn:  # a minute passes
        conn.execute(
            "UPDATE oauth_codes SET expires_at = now() - interval '1 second' WHERE code_hash = sha256(%s)",
            [code.encode()],
        )
    reply = exchange(api, app["id"], code, verifier)
    assert reply.status == 400 and reply.body["error"] == "invalid_grant"


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_grant(
    api: Api, app: dict[str, Any], person: Session
) -> None:
    first = tokens_for(api, person, app["id"])
    second = refresh(api, app["id"], first["refresh_token"])
    assert second.status == 200, second.body
    assert second.body["refresh_token"] != first["refresh_token"]
    assert second.body["access_token"] != first["access_token"]
    assert works(api, second.body["access_token"])
    third = refresh(api, app["id"], second.body["refresh_token"])
    assert third.status == 200
    # the first refresh token again: someone else holds a copy, so everything of this grant stops
    reused = refresh(api, app["id"], first["refresh_token"])
    assert reused.status == 400 and reused.body["error"] == "invalid_grant"
    for access in (first["access_token"], second.body["access_token"], third.body["access_token"]):
        assert not works(api, access)
    assert refresh(api, app["id"], third.body["refresh_token"]).body["error"] == "invalid_grant"


def test_concurrent_refreshes_of_one_token_exactly_one_wins(api: Api, app: dict[str, Any], person: Session) -> None:
    tokens = tokens_for(api, person, app["id"])
    racers = 6
    barrier = threading.Barrier(racers)
    replies: list[Reply] = []

    def race() -> None:
        racer = Api(api.client.application)  # a client of its own per thread
        barrier.wait()
        replies.append(refresh(racer, app["id"], tokens["refresh_token"]))

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status for r in replies) == [200] + [400] * (racers - 1)
    assert {r.body["error"] for r in replies if r.status == 400} == {"invalid_grant"}
    from echo_control import db

    issued = db.connection().execute(
        "SELECT count(*) AS n FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id "
        "WHERE g.user_id = %s AND t.kind = 'refresh'",
        [person.user["id"]],
    )
    assert issued.fetchone()["n"] == 2  # the first and the one winner's: never two rotations of one token


def test_refresh_token_of_another_app_is_refused(
    api: Api, owner: Session, app: dict[str, Any], person: Session
) -> None:
    tokens = tokens_for(api, person, app["id"])
    other = owner.create_app("Other")
    reply = refresh(api, other["id"], tokens["refresh_token"])
    assert reply.status == 400 and reply.body["error"] == "invalid_grant"


def test_revoking_an_access_token_stops_it_and_a_refresh_token_ends_the_grant(
    api: Api, app: dict[str, Any], person: Session
) -> None:
    tokens = tokens_for(api, person, app["id"])

    def revoke(token: str, **extra: str) -> Reply:
        return api.call(
            "POST", "/oauth/revoke", data=urlencode({"token": token, "client_id": app["id"], **extra}), headers=FORM
        )

    assert revoke(tokens["access_token"]).status == 200
    assert not works(api, tokens["access_token"])
    renewed = refresh(api, app["id"], tokens["refresh_token"])  # the grant itself lives on
    assert renewed.status == 200 and works(api, renewed.body["access_token"])
    assert revoke(renewed.body["refresh_token"], token_type_hint="refresh_token").status == 200
    assert not works(api, renewed.body["access_token"])
    assert refresh(api, app["id"], renewed.body["refresh_token"]).body["error"] == "invalid_grant"
    assert revoke("echo_at_never-issued").status == 200  # RFC 7009: unknown tokens are not an error
    missing = api.call("POST", "/oauth/revoke", data=urlencode({"client_id": app["id"]}), headers=FORM)
    assert missing.status == 400 and missing.body["error"] == "invalid_request"


def test_disconnect_stops_every_token_at_once(api: Api, app: dict[str, Any], person: Session) -> None:
    one = tokens_for(api, person, app["id"])
    two = tokens_for(api, person, app["id"])  # a second device
    page = api.call("GET", "/connections", headers=cookie(person))
    assert page.status == 200 and "Chat helper" in page.body
    assert page.body.count(f'action="/connections/{app["id"]}/disconnect"') == 1  # one row per app
    headers = {**FORM, **cookie(person), "Origin": "http://localhost"}
    reply = api.call("POST", f"/connections/{app['id']}/disconnect", data="", headers=headers)
    assert reply.status == 303 and reply.headers["Location"] == "/connections"
    for tokens in (one, two):
        assert not works(api, tokens["access_token"])
        assert refresh(api, app["id"], tokens["refresh_token"]).body["error"] == "invalid_grant"
    assert "Chat helper" not in api.call("GET", "/connections", headers=cookie(person)).body
    assert api.call("POST", f"/connections/{app['id']}/disconnect", data="", headers=headers).status == 303
    # another person's connection is not theirs to end
    assert api.call("POST", "/api/validate-api-key", json_body={"apiKey": one["access_token"]}).body["valid"] is False


def test_tokens_of_a_deactivated_app_stop(api: Api, owner: Session, app: dict[str, Any], person: Session) -> None:
    tokens = tokens_for(api, person, app["id"])
    assert owner.call("PUT", f"/api/echo-apps/{app['id']}", {"isActive": False}).status == 200
    assert not works(api, tokens["access_token"])
    assert refresh(api, app["id"], tokens["refresh_token"]).body["error"] == "invalid_client"
    _, challenge = pkce()
    assert api.call("GET", "/oauth/authorize", query=authorize_query(app["id"], challenge)).status == 400
    assert owner.call("PUT", f"/api/echo-apps/{app['id']}", {"isActive": True}).status == 200
    assert works(api, tokens["access_token"])  # deactivation pauses; disconnecting is what ends a grant


@pytest.mark.parametrize(
    ("fields", "headers", "error"),
    [
        ({"grant_type": "password", "client_id": "APP"}, FORM, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "client_id": "APP"}, FORM, "unsupported_grant_type"),
        ({"client_id": "APP"}, FORM, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "code": "c"}, FORM, "invalid_client"),
        ({"grant_type": "authorization_code", "client_id": str(uuid.uuid4()), "code": "c"}, FORM, "invalid_client"),
        ({"grant_type": "authorization_code", "client_id": "APP"}, FORM, "invalid_request"),
        ({"grant_type": "refresh_token", "client_id": "APP"}, FORM, "invalid_request"),
        ({"grant_type": "refresh_token", "client_id": "APP", "refresh_token": "echo_rt_x"}, FORM, "invalid_grant"),
        (
            {"grant_type": "authorization_code", "client_id": "APP"},
            {"Content-Type": "application/json"},
            "invalid_request",
        ),
    ],
)
def test_token_endpoint_errors_are_rfc_6749(
    api: Api, app: dict[str, Any], fields: dict[str, str], headers: dict[str, str], error: str
) -> None:
    body = urlencode({k: (app["id"] if v == "APP" else v) for k, v in fields.items()})
    reply = api.call("POST", "/oauth/token", data=body, headers=headers)
    json_sent = headers["Content-Type"] != FORM["Content-Type"]
    assert reply.status == (415 if json_sent else 400), reply.body
    assert reply.body["error"] == error
    assert api.call("GET", "/oauth/token").status in (404, 405)


def test_the_app_page_registers_redirect_uris(api: Api, owner: Session) -> None:
    created = owner.create_app("From the page")
    headers = {**FORM, **cookie(owner), "Origin": "http://localhost"}
    body = urlencode({"redirectUris": f"{REDIRECT}\n\nhttp://127.0.0.1:9000/cb\n"})
    reply = api.call("POST", f"/apps/{created['id']}/redirect-uris", data=body, headers=headers)
    assert reply.status == 303
    assert owner.call("GET", f"/api/echo-apps/{created['id']}").body["redirectUris"] == [
        REDIRECT,
        "http://127.0.0.1:9000/cb",
    ]
    refused = api.call(
        "POST",
        f"/apps/{created['id']}/redirect-uris",
        data=urlencode({"redirectUris": "http://x.example/cb"}),
        headers=headers,
    )
    assert refused.status == 303  # back to the app page, which says why
    assert owner.call("GET", f"/api/echo-apps/{created['id']}").body["redirectUris"] == [
        REDIRECT,
        "http://127.0.0.1:9000/cb",
    ]
    page = api.call("GET", f"/apps/{created['id']}", headers=cookie(owner)).body
    assert re.search(r'id="client-id">' + created["id"], page)


def test_the_readme_python_client_signs_in_and_refreshes(
    api: Api, live_server: str, owner: Session, person: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README's example client, run as written against a live server; the person's browser is played by plain HTTP
    requests carrying their session (the consent page, then Allow, then following the redirect back)."""
    import socket
    import webbrowser
    from pathlib import Path

    import requests

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    source = readme.split("A whole client in Python's standard library", 1)[1].split("```python\n", 1)[1]
    source = source.split("```", 1)[0]
    with socket.socket() as probe:  # the example's port, moved to a free one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    redirect = f"http://127.0.0.1:{port}/callback"
    created = owner.create_app("Example client", acceptsCustomers=True)
    owner.call("PUT", f"/api/echo-apps/{created['id']}", {"redirectUris": [redirect]})
    source = source.replace('"http://localhost:3000"', repr(live_server)).replace('"<app id>"', repr(created["id"]))
    source = source.replace('"http://127.0.0.1:8765/callback"', repr(redirect)).replace("8765", str(port))

    def person_allows(url: str) -> bool:
        def browse() -> None:
            session = requests.Session()
            session.cookies.set("echo_session", person.token)
            assert session.get(url, timeout=10).status_code == 200  # the consent page
            query = dict(parse_qs(urlsplit(url).query))
            form = {name: values[0] for name, values in query.items()} | {"decision": "allow"}
            decided = session.post(
                f"{live_server}/oauth/authorize", data=form, headers={"Origin": live_server}, allow_redirects=False
            )
            back = decided.headers["Location"]
            for _ in range(50):  # until the example listens
                try:
                    requests.get(back, timeout=10)
                    return
                except requests.ConnectionError:
                    threading.Event().wait(0.1)

        threading.Thread(target=browse, daemon=True).start()
        return True

    monkeypatch.setattr(webbrowser, "open", person_allows)
    scope: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), scope)  # noqa: S102 (our own README's example)
    assert scope["tokens"]["token_type"] == "Bearer" and scope["tokens"]["access_token"].startswith("echo_at_")
    assert works(api, scope["tokens"]["access_token"])  # the refreshed pair


def test_housekeeping_purges_codes_and_tokens_a_day_past_expiry(api: Api, app: dict[str, Any], person: Session) -> None:
    from echo_control import db, housekeeping

    tokens = tokens_for(api, person, app["id"])
    hashes = [hashlib.sha256(tokens[name].encode()).digest() for name in ("access_token", "refresh_token")]
    count = "SELECT count(*) AS n FROM oauth_tokens WHERE token_hash = ANY(%s)"
    housekeeping.run_housekeeping()
    assert db.connection().execute(count, [hashes]).fetchone()["n"] == 2  # live ones stay
    with db.transaction() as conn:  # a day and a second after the access token's expiry
        conn.execute(
            "UPDATE oauth_tokens SET expires_at = now() - interval '1 day 1 second' WHERE token_hash = %s", [hashes[0]]
        )
    assert housekeeping.run_housekeeping()["oauthSecretsPurged"] >= 1
    assert db.connection().execute(count, [hashes]).fetchone()["n"] == 1
    assert works(api, tokens["access_token"]) is False
    assert refresh(api, app["id"], tokens["refresh_token"]).status == 200


def test_a_grant_is_a_key_in_the_persons_list_where_a_spend_limit_binds_its_tokens(
    api: Api, app: dict[str, Any], person: Session
) -> None:
    access = tokens_for(api, person, app["id"])["access_token"]
    listed = person.call("GET", "/api/api-keys").body["apiKeys"]
    assert [(k["name"], k["echoAppId"], k["isActive"]) for k in listed] == [("Sign in with Echo", app["id"], True)]
    grant_key = listed[0]["id"]
    assert person.call("PUT", f"/api/api-keys/{grant_key}", {"spendLimit": "0.05"}).status == 200
    refused = api.call("POST", "/api/holds", access, {"amount": "0.10"})
    assert refused.status == 402 and refused.error_code == "key_limit_exceeded"
    assert api.call("POST", "/api/holds", access, {"amount": "0.04"}).status == 201
    # revoking that key is disconnecting: the token stops, the app leaves /connections
    assert person.call("DELETE", f"/api/api-keys/{grant_key}").status == 200
    assert not works(api, access)
    assert "Chat helper" not in api.call("GET", "/connections", headers=cookie(person)).body
