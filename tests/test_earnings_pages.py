"""Customers, earnings and payouts in a real Chromium (Playwright): an owner opens an app to customers, a customer
joins through the app's link (signing in on the way) and pays for their own calls, and the owner goes from those
metered calls to a paid-out transfer through the mock onboarding, locally, in the browser."""

import re
import uuid
from decimal import Decimal

import pytest
from conftest import Api
from playwright.sync_api import Browser, Page, expect
from test_dashboard import SHOTS, record_call
from test_dashboard_polish import assert_no_sideways_scrolling, assert_on_screen

from tests.invariants import markup_not_earned, unreconciled_earnings

pytestmark = pytest.mark.browser


@pytest.fixture
def site(live_server: str) -> str:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_server


def browse(browser: Browser, site: str, width: int = 1280) -> Page:
    return browser.new_context(viewport={"width": width, "height": 900}, base_url=site).new_page()


def sign_in(page: Page, site: str, email: str, landing: str = "/dashboard") -> None:
    page.fill("input[name=email]", email)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{site}{landing}")


def test_from_a_customers_metered_calls_to_a_paid_out_transfer(browser: Browser, site: str, api: Api) -> None:
    # the owner creates an app with a markup and opens it to customers
    owner_email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    owner = browse(browser, site)
    owner.goto("/sign-in")
    sign_in(owner, site, owner_email)
    owner.fill("input[name=name]", "Translator")
    owner.click("text=Create app")
    expect(owner.locator("h1")).to_have_text("Translator")
    app_url = owner.url
    app_id = app_url.rsplit("/", 1)[1]
    api.sign_in(owner_email).call("PUT", f"/api/echo-apps/{app_id}", {"markup": "2"})
    expect(owner.locator("#accepts-customers")).to_have_text("owner only")
    owner.click("#open-customers")
    expect(owner.locator("#accepts-customers")).to_have_text("open to customers")
    join_link = owner.locator("#join-link").inner_text().strip()
    assert join_link == f"{site}/join/{app_id}"

    # a customer follows the link: signs in on the way, joins, and gets a key shown once
    customer_email = f"customer-{uuid.uuid4().hex[:8]}@example.com"
    customer = browse(browser, site)
    customer.goto(join_link)
    expect(customer).to_have_url(re.compile(r"/sign-in\?next=%2Fjoin%2F"))
    sign_in(customer, site, customer_email, landing=f"/join/{app_id}")
    expect(customer.locator("h1")).to_have_text("Translator")
    customer.screenshot(path=SHOTS / "join.png", full_page=True)
    customer.click("#join-app")
    expect(customer).to_have_url(app_url)
    key = customer.locator("#new-key-value").inner_text().strip()
    assert key.startswith("echo_")
    expect(customer.locator(".sub")).to_contain_text("an app you use")
    expect(customer.locator("#customers-card")).to_have_count(0)  # the owner's parts are not shown

    # the customer buys credits through the mock checkout from the app's page, then calls with the key
    customer.fill("#amount", "30")
    customer.click("#buy")
    expect(customer.locator("h1")).to_have_text("Pay $30.00")
    customer.click("#pay")
    expect(customer).to_have_url(f"{app_url}?payment=success")
    for _ in range(3):
        assert record_call(site, key, {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 5, "cost": "5"}) == 201
    customer.goto(app_url)
    expect(customer.locator("#calls")).to_have_text("3")
    expect(customer.locator("#spent")).to_have_text("$30.00")
    expect(customer.locator("#transactions tr")).to_have_count(4)
    customer.goto("/dashboard")
    expect(customer.locator("#apps-used")).to_contain_text("Translator")
    expect(customer.locator("#apps-used .spent")).to_have_text("$30.00")
    expect(customer.locator("#balance")).to_have_text("$0.00")

    # the owner sees the customer, and what the app earned
    owner.goto(app_url)
    expect(owner.locator("#customers")).to_contain_text(customer_email)
    expect(owner.locator("#customers tr").nth(1)).to_contain_text("$30.00")
    owner.goto("/earnings")
    expect(owner.locator("#available")).to_have_text("$15.00")
    expect(owner.locator("#lifetime")).to_have_text("$15.00")
    expect(owner.locator("#earnings-by-app")).to_contain_text("Translator")
    bars = owner.locator("#earnings-chart rect")
    assert bars.count() == 30 and float(bars.nth(29).get_attribute("height") or 0) > 0
    expect(owner.locator("#earnings-chart-summary")).to_contain_text("$15.00")
    expect(owner.locator("#payouts-status")).to_have_text("not set up")

    # onboarding through the mock, which tells our webhook the account can be paid
    owner.click("#set-up-payouts")
    expect(owner).to_have_url(re.compile(r"/connect/mock/acct_mock_\w+\?return=%2Fearnings$"))
    expect(owner.locator("h1")).to_have_text("Set up payouts")
    owner.click("#complete-onboarding")
    expect(owner).to_have_url(f"{site}/earnings?onboarding=complete")
    expect(owner.locator("#payouts-status")).to_have_text("payouts enabled")

    # a payout of $10: a double submit of the same form pays once
    form_key = owner.locator("input[name=idempotencyKey]").get_attribute("value")
    owner.fill("#payout-amount", "10")
    owner.click("#request-payout")
    expect(owner.locator(".notice")).to_contain_text("The payout of $10.00 is on its way")
    expect(owner.locator("#payouts")).to_contain_text("paid")
    expect(owner.locator("#paid-out")).to_have_text("$10.00")
    expect(owner.locator("#available")).to_have_text("$5.00")
    owner.screenshot(path=SHOTS / "earnings.png", full_page=True)
    again = owner.request.post(
        f"{site}/earnings/payouts",
        form={"amount": "10", "idempotencyKey": form_key or ""},
        headers={"Origin": site},
        max_redirects=0,
    )
    assert again.status == 303  # the same form sent again: the same payout answers
    owner.goto("/earnings")
    expect(owner.locator("#payouts tr")).to_have_count(2)  # header + the one payout
    expect(owner.locator("#available")).to_have_text("$5.00")
    below = owner.locator("#payout-amount")
    below.evaluate("el => el.removeAttribute('min')")
    below.fill("5")
    owner.click("#request-payout")
    expect(owner.locator(".notice.bad")).to_contain_text("at least 10")
    figures = api.sign_in(owner_email).call("GET", "/api/earnings").body
    assert (Decimal(figures["available"]), Decimal(figures["paidOut"])) == (Decimal(5), Decimal(10))
    assert unreconciled_earnings() == [] and markup_not_earned() == []


@pytest.mark.parametrize("width", [1280, 390])
def test_the_earnings_page_and_the_customers_card_fit_the_screen(
    browser: Browser, site: str, api: Api, width: int
) -> None:
    email = f"fit-{uuid.uuid4().hex[:8]}@example.com"
    owner = api.sign_in(email)
    app = owner.create_app("A name long enough to wrap on a phone screen", markup="1.5", acceptsCustomers=True)
    customer = api.sign_in(f"a-rather-long-customer-address-{uuid.uuid4().hex}@example.com")
    customer.create_key(app["id"])
    page = browse(browser, site, width)
    page.goto("/sign-in")
    sign_in(page, site, email)
    page.goto(f"/apps/{app['id']}")
    assert_on_screen(page, page.locator("#join-link"))
    assert_on_screen(page, page.locator("#close-customers"))
    assert_no_sideways_scrolling(page)
    page.locator("#customers-card").screenshot(path=SHOTS / f"customers-{width}.png")
    page.goto("/earnings")
    assert_on_screen(page, page.locator("#set-up-payouts"))
    assert_no_sideways_scrolling(page)
    page.screenshot(path=SHOTS / f"earnings-{width}.png", full_page=True)


def test_a_closed_apps_join_link_is_the_404_page(browser: Browser, site: str, api: Api) -> None:
    owner = api.sign_in()
    app = owner.create_app("Closed")
    page = browse(browser, site)
    page.goto(f"/join/{app['id']}")
    sign_in(page, site, f"visitor-{uuid.uuid4().hex[:8]}@example.com", landing=f"/join/{app['id']}")
    expect(page.locator("h1")).to_have_text("Echo app not found")
    page.goto(f"/apps/{app['id']}")
    expect(page.locator("h1")).to_have_text("Echo app not found")
