"""Sign in with Echo in a real headless Chromium: an app on another origin sends a person to the consent page, gets a
code back, exchanges it, and bills a call with the token; the person disconnects it from /connections."""

import base64
import hashlib
import secrets
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from conftest import Api, credit
from playwright.sync_api import Browser, expect

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parent.parent / "test-output" / "screenshots"


class _Callback(BaseHTTPRequestHandler):
    """The third-party app's redirect URI: it only says it got the code."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>Chat helper</title><h1 id=done>Signed in</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def third_party_app() -> Iterator[str]:
    """An app's own site on another origin (localhost, while Echo is 127.0.0.1): its callback address."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Callback)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_port}/auth/echo/callback"
    server.shutdown()


def test_an_app_signs_a_person_in_with_echo_and_bills_their_call(
    browser: Browser, live_server: str, api: Api, third_party_app: str
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    owner_email = f"owner-{secrets.token_hex(4)}@example.com"
    person_email = f"person-{secrets.token_hex(4)}@example.com"
    owner = api.sign_in(owner_email)
    app = owner.create_app("Chat helper", description="Answers questions", markup="1.5", acceptsCustomers=True)
    person = api.sign_in(person_email)
    credit(person.user["id"], "1")

    # the owner registers the redirect URI on the app page
    owner_page = browser.new_context(base_url=live_server).new_page()
    owner_page.goto(f"/apps/{app['id']}")
    owner_page.fill("input[name=email]", owner_email)
    owner_page.click("button[type=submit]")
    expect(owner_page.locator("#client-id")).to_have_text(app["id"])
    owner_page.fill("#redirect-uris", third_party_app)
    owner_page.click("#save-redirect-uris")
    expect(owner_page.locator("[role=status]")).to_contain_text("1 redirect URIs saved")
    expect(owner_page.locator("#redirect-uris")).to_have_value(third_party_app)

    # the app sends the person (not signed in) to Echo with PKCE
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    state = secrets.token_urlsafe(16)
    query = {
        "response_type": "code",
        "client_id": app["id"],
        "redirect_uri": third_party_app,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
    }
    page = browser.new_context(base_url=live_server).new_page()
    page.goto("/oauth/authorize?" + urlencode(query))
    expect(page.locator("input[name=email]")).to_be_visible()  # sign-in first
    page.fill("input[name=email]", person_email)
    page.click("button[type=submit]")
    # ... and back to the consent page for the same request
    expect(page.locator("#consent-app")).to_have_text("Chat helper")
    expect(page.locator("#consent-owner")).to_have_text(owner_email)
    expect(page.locator("#consent-markup")).to_have_text("1.5")
    expect(page.locator("#consent-scopes")).to_contain_text("spend from your Echo balance")
    page.screenshot(path=SHOTS / "oauth-consent.png", full_page=True)
    page.click("#allow")

    # back at the app, on its other origin, with the code and the state
    expect(page.locator("#done")).to_have_text("Signed in")
    landed = urlsplit(page.url)
    assert f"{landed.scheme}://{landed.netloc}{landed.path}" == third_party_app
    params = {name: values[0] for name, values in parse_qs(landed.query).items()}
    assert params["state"] == state

    # the app's back end exchanges the code, then bills a call with the token
    tokens = requests.post(
        f"{live_server}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": third_party_app,
            "client_id": app["id"],
            "code_verifier": verifier,
        },
        timeout=10,
    )
    assert tokens.status_code == 200, tokens.text
    access = tokens.json()["access_token"]
    call = {"model": "gpt-4o", "inputTokens": 100, "outputTokens": 50, "cost": "0.010000"}
    billed = requests.post(
        f"{live_server}/api/transactions", json=call, headers={"Authorization": f"Bearer {access}"}, timeout=10
    )
    assert billed.status_code == 201, billed.text
    assert billed.json()["cost"] == "0.015000" and billed.json()["userId"] == person.user["id"]
    assert Decimal(person.call("GET", "/api/balance").body["balance"]) == Decimal("0.985")

    # the person sees the app under Connections and disconnects it: the token stops at once
    page.goto(f"{live_server}/connections")
    expect(page.locator("#connections")).to_contain_text("Chat helper")
    page.screenshot(path=SHOTS / "oauth-connections.png", full_page=True)
    page.click("summary:has-text('Disconnect')")
    page.click("button[aria-label='Disconnect Chat helper']")
    expect(page.locator("[role=status]")).to_contain_text("Chat helper is disconnected")
    expect(page.locator("#no-connections")).to_be_visible()
    again = requests.post(
        f"{live_server}/api/transactions", json=call, headers={"Authorization": f"Bearer {access}"}, timeout=10
    )
    assert again.status_code == 401
