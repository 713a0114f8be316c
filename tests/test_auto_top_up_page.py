"""The balance page's automatic top-up card in a real Chromium, at 1280 and 390 px: save a card on the mock setup
page, turn auto top-up on with its three numbers, see this month's charge after a call crossed the threshold; a
declining card turns it off and the page says why; refused numbers are said beside the form."""

import uuid
from decimal import Decimal

import pytest
from conftest import Api, KeyHolder, credit
from playwright.sync_api import Browser, Page, expect
from test_dashboard import SHOTS, sign_in
from test_dashboard_polish import assert_no_sideways_scrolling

from echo_control import auto_top_up

pytestmark = pytest.mark.browser


@pytest.fixture
def site(live_server: str) -> str:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_server


def customer(api: Api, browser: Browser, site: str, width: int) -> tuple[Page, KeyHolder]:
    """A signed-in person with $10 and a key of their own app, and their page."""
    email = f"top-up-{uuid.uuid4().hex[:8]}@example.com"
    session = api.sign_in(email)
    app = session.create_app("Top-up app")
    credit(session.user["id"], "10")
    return sign_in(browser, site, email, width=width), KeyHolder(session, app, session.create_key(app["id"])["key"])


def save_card(page: Page, site: str, card: str = "succeeds") -> None:
    page.goto("/balance")
    expect(page.locator("#saved-card")).to_contain_text("No card saved yet")
    expect(page.locator("#auto-top-up-enabled")).to_be_disabled()
    page.click("#start-card-setup")
    expect(page).to_have_url(f"{site}/setup/mock/" + page.url.rsplit("/", 1)[-1])
    expect(page.locator("h1")).to_have_text("Save a card")
    page.check(f"input[name=card][value={card}]")
    page.click("#save-card")
    expect(page).to_have_url(f"{site}/balance?card=saved")


def turn_on(page: Page, threshold: str, amount: str, limit: str) -> None:
    page.check("#auto-top-up-enabled")
    page.fill("#auto-top-up-form input[name=threshold]", threshold)
    page.fill("#auto-top-up-form input[name=amount]", amount)
    page.fill("#auto-top-up-form input[name=monthlyLimit]", limit)
    page.click("#save-auto-top-up")


def cross(holder: KeyHolder, cost: str, site: str) -> None:
    body = {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "cost": cost}
    assert holder.call("POST", "/api/transactions", body).status == 201
    auto_top_up.charge_due(f"{site}/api/stripe/webhook")  # what the runner's worker does on the commit's NOTIFY


def test_save_a_card_turn_it_on_and_see_the_months_charges(api: Api, browser: Browser, site: str) -> None:
    page, holder = customer(api, browser, site, 1280)
    save_card(page, site)
    expect(page.locator("#saved-card")).to_contain_text("Visa •••• 4242")
    expect(page.locator("#auto-top-up-state")).to_have_text("off")
    expect(page.locator("#auto-top-up-rules")).to_contain_text("One charge runs at a time")
    expect(page.locator("#auto-top-up-rules")).to_contain_text("never add up to more than the monthly limit")

    turn_on(page, "5", "20", "60")
    expect(page.locator("#auto-top-up .notice.ok")).to_contain_text("when what you can spend goes below $5.00")
    expect(page.locator("#auto-top-up-state")).to_have_text("on")
    expect(page.locator("#auto-top-up-form input[name=amount]")).to_have_value("20")
    expect(page.locator("#charged-this-month")).to_have_text("$0.00")

    cross(holder, "6", site)
    page.goto("/balance")
    expect(page.locator("#balance")).to_have_text("$24.00")
    expect(page.locator("#charged-this-month")).to_have_text("$20.00")
    expect(page.locator("#auto-top-up-month")).to_contain_text("of at most $60.00")
    expect(page.locator("#auto-top-up-charges tr", has_text="$20.00")).to_contain_text("succeeded")
    expect(page.locator("#payments")).to_contain_text("completed")
    page.screenshot(path=SHOTS / "auto-top-up-1280.png", full_page=True)

    # a monthly limit below the amount is refused beside the form, which keeps what was typed
    turn_on(page, "5", "30", "20")
    expect(page.locator("#auto-top-up .notice.bad")).to_contain_text("monthlyLimit must be at least amount")
    expect(page.locator("#auto-top-up-form input[name=monthlyLimit]")).to_have_value("20")
    assert Decimal(holder.session.call("GET", "/api/balance/auto-top-up").body["monthlyLimit"]) == 60


def test_a_declined_card_turns_it_off_and_the_page_says_why_on_a_phone(api: Api, browser: Browser, site: str) -> None:
    page, holder = customer(api, browser, site, 390)
    save_card(page, site, "declines")
    expect(page.locator("#saved-card")).to_contain_text("•••• 0002")
    turn_on(page, "5", "20", "100")
    expect(page.locator("#auto-top-up-state")).to_have_text("on")
    cross(holder, "6", site)
    page.goto("/balance")
    expect(page.locator("#auto-top-up-state")).to_have_text("off")
    expect(page.locator("#auto-top-up-error")).to_contain_text("Auto top-up turned itself off")
    expect(page.locator("#auto-top-up-error")).to_contain_text("declined")
    expect(page.locator("#auto-top-up-charges tr", has_text="$20.00")).to_contain_text("failed")
    expect(page.locator("#balance")).to_have_text("$4.00")
    assert_no_sideways_scrolling(page)
    page.screenshot(path=SHOTS / "auto-top-up-declined-390.png", full_page=True)
