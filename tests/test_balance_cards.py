"""The balance page's cards add up in a real Chromium: balance = paid + credited − spent, credits from adjustments
and credit codes shown beside what was paid and spent."""

from decimal import Decimal

import pytest
from conftest import Api, credit
from playwright.sync_api import Browser, expect
from test_dashboard import SHOTS, record_call
from test_dashboard_polish import sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def site(live_server: str) -> str:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_server


def test_the_balance_cards_add_up_with_credits_beside_paid_and_spent(browser: Browser, site: str, api: Api) -> None:
    owner = api.sign_in()
    app = owner.create_app("Cards", acceptsCustomers=True)
    customer, key = owner.customer_of(app, "10")  # an adjustment, not a payment
    for cost in ("1.25", "0.5"):
        assert record_call(site, key, {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "cost": cost}) == 201
    page = sign_in(browser, site, 1280, customer.user["email"])
    page.goto("/balance")
    expect(page.locator("#total-paid")).to_have_text("$0.00")
    expect(page.locator("#total-credited")).to_have_text("$10.00")
    expect(page.locator("#total-spent")).to_have_text("$1.75")
    expect(page.locator("#balance")).to_have_text("$8.25")

    def shown(card: str) -> Decimal:
        return Decimal(page.locator(card).inner_text().replace("$", "").replace(",", ""))

    credit(customer.user["id"], "2")
    page.reload()
    assert (
        shown("#total-paid") + shown("#total-credited") - shown("#total-spent") == shown("#balance") == Decimal("10.25")
    )
    page.screenshot(path=SHOTS / "balance-cards.png", full_page=True)


def test_the_owners_app_page_splits_customers_spend_from_their_own_and_names_each_caller(
    browser: Browser, site: str, api: Api
) -> None:
    owner = api.sign_in()
    app = owner.create_app("Split", acceptsCustomers=True)
    customer, customer_key = owner.customer_of(app, "10")
    credit(owner.user["id"], "10")
    own_key = owner.create_key(app["id"])["key"]
    assert record_call(site, customer_key, {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "cost": "2"}) == 201
    assert record_call(site, own_key, {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "cost": "0.5"}) == 201
    page = sign_in(browser, site, 1280, owner.user["email"])
    page.goto(f"/apps/{app['id']}")
    expect(page.locator("#cost")).to_have_text("$2.50")
    expect(page.locator("#customers-spent")).to_have_text("$2.00")
    expect(page.locator("#own-spent")).to_have_text("$0.50")
    callers = page.locator("#transactions td.caller").all_inner_texts()
    assert callers == ["you", customer.user["email"]]  # newest first
