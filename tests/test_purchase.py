"""Buying credits in a real Chromium: to Stripe Checkout through the real SDK (a fake Stripe on loopback) with the
pages' Content-Security-Policy in force, and through the mock checkout of `python -m local_runner` on another port
browsed at 127.0.0.1, with no ECHO_PUBLIC_URL."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

ROOT = Path(__file__).resolve().parent.parent
CHECKOUT_URL = "https://checkout.stripe.com/c/pay/cs_test_1"

pytestmark = pytest.mark.browser


@pytest.fixture
def fake_stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, str]]]:
    """Stripe's Checkout Sessions API on loopback, as the issue describes it; records each form sent."""
    sent: list[dict[str, str]] = []

    class FakeStripe(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
            sent.append({"path": self.path, **{k: v[0] for k, v in form.items()}})
            body = json.dumps({"id": "cs_test_1", "object": "checkout.session", "url": CHECKOUT_URL}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeStripe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_x")
    monkeypatch.setenv("STRIPE_API_BASE", f"http://127.0.0.1:{server.server_port}")
    yield sent
    server.shutdown()


def csp_violations(page: Page) -> list[str]:
    """Every Content-Security-Policy complaint Chromium prints on this page's console, collected as they come."""
    seen: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            seen.append(message.text)

    page.on("console", note)
    return seen


def sign_in(browser: Browser, site: str, email: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=site).new_page()
    page.goto("/sign-in")
    page.fill("input[name=email]", email)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{site}/dashboard")
    return page


def create_app(page: Page, name: str) -> str:
    page.fill("input[name=name]", name)
    page.click("text=Create app")
    expect(page.locator("h1")).to_have_text(name)
    return page.url


def test_buy_credits_reaches_stripe_checkout_without_a_csp_violation(
    browser: Browser, live_server: str, fake_stripe: list[dict[str, str]]
) -> None:
    page = sign_in(browser, live_server, f"stripe-{uuid.uuid4().hex[:8]}@example.com")
    app_url = create_app(page, "Checkout app")
    violations = csp_violations(page)
    page.route(
        "https://checkout.stripe.com/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<h1>Stripe Checkout</h1>"),
    )
    page.fill("#amount", "12")
    page.click("#buy")
    expect(page).to_have_url(CHECKOUT_URL)
    expect(page.locator("h1")).to_have_text("Stripe Checkout")
    assert violations == []
    [session] = fake_stripe
    assert session["path"] == "/v1/checkout/sessions"
    assert session["line_items[0][price_data][unit_amount]"] == "1200"
    # Stripe sends the buyer back to the app page they paid from, on the origin they browsed
    assert session["success_url"] == f"{app_url}?payment=success"
    assert session["cancel_url"] == f"{app_url}?payment=cancelled"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def runner(database_url: str, tmp_path: Path) -> Iterator[str]:
    """`python -m local_runner` as `PORT=<port> make dev` starts it (on this run's database), no ECHO_PUBLIC_URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECHO_", "STRIPE_", "POWERTOOLS_"))}
    env.update({"PORT": str(port), "DATABASE_URL": database_url, "ECHO_DATA_DIR": str(tmp_path)})
    log = tmp_path / "runner.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "local_runner"], cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    site = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{site}/sign-in", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the runner did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)
    yield site
    process.terminate()
    process.wait(timeout=20)


def test_the_mock_purchase_works_on_another_port_browsed_at_127_0_0_1(browser: Browser, runner: str) -> None:
    page = sign_in(browser, runner, f"port-{uuid.uuid4().hex[:8]}@example.com")
    app_url = create_app(page, "Port app")
    violations = csp_violations(page)
    page.fill("#amount", "10")
    page.click("#buy")
    expect(page.locator("h1")).to_have_text("Pay $10.00")
    assert page.url.startswith(f"{runner}/checkout/mock/cs_mock_")
    page.click("#pay")  # the mock signs the completed event and posts it to this runner's webhook
    expect(page).to_have_url(f"{app_url}?payment=success")
    page.goto("/balance")
    expect(page.locator("#balance")).to_have_text("$10.00")
    expect(page.locator("#payments")).to_contain_text("completed")
    assert violations == []
