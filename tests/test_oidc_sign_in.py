"""OpenID Connect sign-in (ECHO_AUTH_MODE=oidc) end to end: a real Chromium, the local runner over HTTP, and a fake
provider on loopback (tests/fake_oidc.py) with a real RSA key, PKCE checked by the provider as a real one does.
Each way a sign-in can go wrong is a test: none of them starts a session."""

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeOidc
from playwright.sync_api import Browser, BrowserContext, Page, expect

pytestmark = pytest.mark.browser


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOidc]:
    fake = FakeOidc().start()
    monkeypatch.setenv("ECHO_AUTH_MODE", "oidc")
    monkeypatch.setenv("ECHO_OIDC_ISSUER", fake.issuer)
    monkeypatch.setenv("ECHO_OIDC_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("ECHO_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    yield fake
    fake.stop()


@pytest.fixture
def context(browser: Browser, live_server: str) -> Iterator[BrowserContext]:
    made = browser.new_context(base_url=live_server)
    yield made
    made.close()


def cookie(context: BrowserContext, name: str) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == name), None)


def get(site: str, path: str, token: str | None = None, cookie_value: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if cookie_value:
        headers["Cookie"] = f"echo_session={cookie_value}"
    request = urllib.request.Request(site + path, headers=headers)

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirects).open(request) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sign_in_refused(page: Page, live_server: str, context: BrowserContext) -> None:
    """The sign-in ended on our error page, and nobody is signed in."""
    page.goto("/dashboard")
    expect(page.get_by_text("Sign-in did not complete")).to_be_visible()
    assert cookie(context, "echo_session") is None
    status, _ = get(live_server, "/dashboard")
    assert status == 303


def test_a_person_signs_in_through_the_provider(
    provider: FakeOidc, context: BrowserContext, live_server: str, database_url: str
) -> None:
    page = context.new_page()
    page.goto("/balance")  # a page that needs signing in

    # They went to the provider and came back to the page they asked for, signed in as the provider's user.
    expect(page).to_have_url(f"{live_server}/balance")
    expect(page.get_by_text(provider.user.email)).to_be_visible()

    # The authorization request was the code flow with PKCE S256, a state and a nonce, back to our callback.
    [asked] = provider.authorize_requests
    assert asked["response_type"] == "code" and asked["client_id"] == CLIENT_ID
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert len(asked["state"]) >= 32 and len(asked["nonce"]) >= 32
    assert asked["redirect_uri"] == f"{live_server}/auth/callback"
    assert set(asked["scope"].split()) == {"openid", "email", "profile"}
    # The code was exchanged with the verifier (the provider checked it against the challenge) and our secret.
    [exchanged] = provider.token_requests
    assert exchanged["code_verifier"] and exchanged["authorization"].startswith("Basic ")

    # Our own session: an opaque cookie (not the provider's token), and the state cookie is gone.
    session = cookie(context, "echo_session")
    assert session is not None and session.startswith("ses_")
    assert cookie(context, "echo_oidc_state") is None
    status, me = get(live_server, "/api/me", session)
    assert status == 200 and json.loads(me)["user"]["email"] == provider.user.email

    # The person is known by (issuer, sub); signing in again finds the same account.
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT id, oidc_issuer, oidc_subject FROM users WHERE lower(email) = lower(%s)", [provider.user.email]
        ).fetchone()
    assert row is not None and row[1:] == (provider.issuer, provider.user.sub)
    # The provider's ID token is accepted as a bearer by the API (JWKS), as the same user.
    status, me = get(live_server, "/api/me", provider.issued_id_tokens[0])
    assert status == 200 and json.loads(me)["user"]["id"] == str(row[0])
    # A state is used once: coming back again with the same answer starts nothing.
    page.goto(f"/auth/callback?code=again&state={asked['state']}")
    expect(page.get_by_text("Sign-in did not complete")).to_be_visible()


def test_a_wrong_state_is_refused(provider: FakeOidc, context: BrowserContext, live_server: str) -> None:
    provider.state_override = "a-state-this-browser-never-sent"
    page = context.new_page()
    page.goto("/dashboard")
    expect(page.get_by_text("it was not started in this browser")).to_be_visible()
    assert provider.token_requests == []  # the code was never even exchanged
    sign_in_refused(page, live_server, context)


def test_a_callback_without_the_browsers_state_cookie_is_refused(
    provider: FakeOidc, browser: Browser, live_server: str
) -> None:
    # Someone else's sign-in answer (login CSRF): a valid state, but not started in this browser.
    starter = browser.new_context(base_url=live_server)
    page = starter.new_page()
    page.route(f"{live_server}/auth/callback*", lambda route: route.abort())  # the answer never reaches us here
    page.goto("/dashboard", wait_until="commit")
    page.wait_for_timeout(300)
    starter.close()
    state = provider.authorize_requests[-1]["state"]
    victim = browser.new_context(base_url=live_server)
    victim_page = victim.new_page()
    victim_page.goto(f"/auth/callback?code=x&state={state}")
    expect(victim_page.get_by_text("it was not started in this browser")).to_be_visible()
    assert cookie(victim, "echo_session") is None
    victim.close()


def test_a_refused_code_exchange_signs_nobody_in(provider: FakeOidc, context: BrowserContext, live_server: str) -> None:
    provider.refuse_tokens = True
    page = context.new_page()
    page.goto("/dashboard")
    expect(page.get_by_text("the identity provider refused the code (invalid_grant)")).to_be_visible()
    assert len(provider.token_requests) == 1
    sign_in_refused(page, live_server, context)


@pytest.mark.parametrize(
    ("case", "claims"),
    [
        ("wrong audience", {"aud": "another-client", "azp": CLIENT_ID}),  # azp alone would let it through
        ("wrong nonce", {"nonce": "a-nonce-we-never-sent"}),
        ("expired", {"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}),
        ("wrong issuer", {"iss": "https://evil.example"}),
    ],
)
def test_an_id_token_that_does_not_hold_is_refused(
    provider: FakeOidc, context: BrowserContext, live_server: str, case: str, claims: dict[str, Any]
) -> None:
    provider.claims_override = claims
    page = context.new_page()
    page.goto("/dashboard")
    expect(page.get_by_text("the ID token is not valid")).to_be_visible()
    sign_in_refused(page, live_server, context)


def test_an_id_token_signed_by_another_key_is_refused(
    provider: FakeOidc, context: BrowserContext, live_server: str
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    provider.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    page = context.new_page()
    page.goto("/dashboard")
    expect(page.get_by_text("the ID token is not valid")).to_be_visible()
    sign_in_refused(page, live_server, context)


def test_signing_out_ends_the_session_and_does_not_sign_straight_back_in(
    provider: FakeOidc, context: BrowserContext, live_server: str
) -> None:
    page = context.new_page()
    page.goto("/dashboard")
    expect(page.get_by_text(provider.user.email)).to_be_visible()
    session = cookie(context, "echo_session")
    assert session is not None and get(live_server, "/api/me", session)[0] == 200

    page.get_by_role("button", name="Sign out").click()

    # The sign-in page says so and waits (the provider would sign the person straight back in) …
    expect(page).to_have_url(f"{live_server}/sign-in?signedOut=1")
    expect(page.locator("#signed-out")).to_have_text("You have signed out.")
    assert len(provider.authorize_requests) == 1
    # … and the old session token is refused from now on, as bearer and as cookie.
    assert get(live_server, "/api/me", session)[0] == 401
    status, _ = get(live_server, "/dashboard", cookie_value=session)
    assert status == 303
    # Signing in again is one click, and a new session.
    page.click("#sign-in-again")
    expect(page).to_have_url(f"{live_server}/dashboard")
    assert cookie(context, "echo_session") not in (None, session)


def test_a_next_address_off_this_site_ends_on_the_dashboard(
    provider: FakeOidc, context: BrowserContext, live_server: str
) -> None:
    page = context.new_page()
    page.goto("/sign-in?next=%2F%2Fevil.example%2Fx")
    expect(page).to_have_url(f"{live_server}/dashboard")


def test_the_callback_is_a_404_unless_oidc_is_the_mode(live_server: str) -> None:
    assert get(live_server, "/auth/callback?code=x&state=y")[0] == 404
