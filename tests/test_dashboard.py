"""The dashboard in a real headless Chromium (Debian's), driven by Playwright, against the local runner."""

import json
import urllib.request
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-output" / "screenshots"

pytestmark = pytest.mark.browser


@pytest.fixture
def site(live_server: str) -> str:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_server


def sign_in(browser: Browser, site: str, email: str, width: int = 1280) -> Page:
    page = browser.new_context(viewport={"width": width, "height": 900}, base_url=site).new_page()
    page.goto("/dashboard")
    expect(page).to_have_url(f"{site}/sign-in?next=%2Fdashboard")
    page.fill("input[name=email]", email)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{site}/dashboard")
    return page


def record_call(site: str, key: str, body: dict) -> int:
    request = urllib.request.Request(
        f"{site}/api/transactions",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_person_runs_an_app_from_the_dashboard(browser: Browser, site: str) -> None:
    email = f"dash-{uuid.uuid4().hex[:8]}@example.com"
    page = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=site).new_page()
    page.goto("/sign-in")
    page.screenshot(path=SHOTS / "sign-in.png", full_page=True)
    page = sign_in(browser, site, email)
    expect(page.locator("#apps")).to_contain_text("No apps yet")
    expect(page.locator("#balance")).to_have_text("$0.00")
    page.screenshot(path=SHOTS / "dashboard-empty.png", full_page=True)

    # create an app
    page.fill("input[name=name]", "Support bot")
    page.fill("input[name=description]", "Answers customer tickets")
    page.click("text=Create app")
    expect(page.locator("h1")).to_have_text("Support bot")
    app_url = page.url

    # create a key: shown once, with a copy button, after a redirect back to the app page
    page.click("#create-key")
    expect(page).to_have_url(app_url)
    key = page.locator("#new-key-value").inner_text().strip()
    assert key.startswith("echo_")
    expect(page.locator("#copy-key")).to_be_visible()
    page.screenshot(path=SHOTS / "app-new-key.png", full_page=True)
    page.goto(app_url)
    expect(page.locator("#new-key")).to_have_count(0)
    assert key not in page.content()
    expect(page.locator("#keys")).to_contain_text(key[-4:])

    # buy credits through the mock checkout
    page.fill("#amount", "10")
    page.click("#buy")
    expect(page.locator("h1")).to_have_text("Pay $10.00")
    page.screenshot(path=SHOTS / "mock-checkout.png", full_page=True)
    page.click("#pay")
    expect(page).to_have_url(f"{app_url}?payment=success")  # back where the purchase started
    page.goto("/balance")
    expect(page.locator("#balance")).to_have_text("$10.00")
    expect(page.locator("#payments")).to_contain_text("completed")

    # meter calls with the key through the API, then see the page update
    for model, tokens in (("gpt-4o", 1200), ("gpt-4o-mini", 5000), ("gpt-4o", 800)):
        assert record_call(site, key, {"model": model, "inputTokens": tokens, "outputTokens": 300}) == 201
    page.goto(app_url)
    expect(page.locator("#calls")).to_have_text("3")
    expect(page.locator("#transactions tr")).to_have_count(4)  # header + 3
    expect(page.locator("#usage-by-model")).to_contain_text("gpt-4o-mini")
    bars = page.locator("#usage-chart rect")
    heights = [float(bars.nth(i).get_attribute("height") or 0) for i in range(bars.count())]
    assert len(heights) == 30 and max(heights) > 0
    page.screenshot(path=SHOTS / "app-details.png", full_page=True)
    with page.expect_download() as download:
        page.click("#csv")
    assert Path(download.value.path()).read_text().count("\n") == 4  # header + 3 rows

    page.goto("/balance")
    expect(page.locator("#spend tr")).to_have_count(4)
    page.screenshot(path=SHOTS / "balance.png", full_page=True)
    page.goto("/dashboard")
    expect(page.locator("#apps")).to_contain_text("Support bot")
    page.screenshot(path=SHOTS / "dashboard.png", full_page=True)

    # revoke the key, and the API refuses it
    page.goto(app_url)
    page.click("#keys details.confirm summary")
    page.click("text=Yes, revoke")
    expect(page.locator("#keys")).to_contain_text("revoked")
    assert record_call(site, key, {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1}) == 401

    # nobody else sees any of it
    stranger = sign_in(browser, site, f"other-{uuid.uuid4().hex[:8]}@example.com")
    stranger.goto(app_url)
    expect(stranger.locator("h1")).to_have_text("Echo app not found")
    assert "Support bot" not in stranger.content()
    stranger.goto("/dashboard")
    expect(stranger.locator("#apps")).to_contain_text("No apps yet")


def test_the_dashboard_fits_a_phone(browser: Browser, site: str) -> None:
    page = sign_in(browser, site, f"phone-{uuid.uuid4().hex[:8]}@example.com", width=390)
    page.fill("input[name=name]", "Pocket app")
    page.click("text=Create app")
    for path in ("/dashboard", page.url, "/balance"):
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
    page.goto("/dashboard")
    page.screenshot(path=SHOTS / "dashboard-phone.png", full_page=True)


def test_admins_adjust_balances_from_the_balance_page(browser: Browser, site: str) -> None:
    from conftest import ADMIN_EMAIL

    customer = f"cust-{uuid.uuid4().hex[:8]}@example.com"
    sign_in(browser, site, customer).close()
    admin = sign_in(browser, site, ADMIN_EMAIL)
    admin.goto("/balance")
    admin.fill("#admin-adjust input[name=email]", customer)
    admin.fill("#admin-adjust input[name=amount]", "4.5")
    admin.fill("#admin-adjust input[name=reason]", "Goodwill credit")
    admin.click("#admin-adjust button")
    expect(admin).to_have_url(f"{site}/balance?payment=adjusted")
    customer_page = sign_in(browser, site, customer)
    expect(customer_page.locator("#balance")).to_have_text("$4.50")
    # and a non-admin has no such form, nor the route
    expect(customer_page.locator("#admin-adjust")).to_have_count(0)


def test_form_posts_from_another_site_are_refused(site: str, api) -> None:
    victim = api.sign_in()
    request = urllib.request.Request(
        f"{site}/dashboard/apps",
        data=b"name=Planted",
        method="POST",
        headers={
            "Origin": "https://evil.example",
            "Cookie": f"echo_session={victim.token}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 403
    assert victim.call("GET", "/api/echo-apps").body["echoApps"] == []


def test_the_balance_page_shows_credits_in_the_order_calls_take_them_and_what_is_owed(
    browser: Browser, site: str, api
) -> None:
    from conftest import credit

    email = f"lots-{uuid.uuid4().hex[:8]}@example.com"
    page = sign_in(browser, site, email)
    session = api.sign_in(email)
    app = session.create_app("Lots")
    key = session.create_key(app["id"])["key"]
    credit(session.user["id"], "1")
    page.goto("/balance")
    expect(page.locator("#lots tr")).to_have_count(2)  # the header and the one credit
    expect(page.locator("#lots")).to_contain_text("Added by an admin")
    assert record_call(site, key, {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "cost": "1.5"}) == 201
    page.goto("/balance")
    expect(page.locator("#debt")).to_contain_text("0.5")  # the call happened: the half dollar past the credit is owed
    expect(page.locator("#lots")).to_have_count(0)
    expect(page.locator("#balance")).to_contain_text("-")
