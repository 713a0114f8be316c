"""One money format across the dashboard, read from the pages a real Chromium renders: $1 and above in dollars and
cents with thousands separators, below $1 to at most 4 significant digits, never metering noise such as $79.50036,
and one precision for every tick of a chart's axis."""

import re
from decimal import Decimal

import pytest
from conftest import Api, credit
from playwright.sync_api import Browser, Page
from test_dashboard import SHOTS, record_call
from test_dashboard_polish import sign_in

pytestmark = pytest.mark.browser
AMOUNT = re.compile(r"-?\$[\d,]+(?:\.\d+)?")
FIGURES = ".stat, td.num, strong, .sub, #balance-summary, .spent"


@pytest.fixture
def site(live_server: str) -> str:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_server


def assert_follows_the_rule(shown: str) -> None:
    match = re.fullmatch(r"-?\$(\d{1,3}(?:,\d{3})*)\.(\d+)", shown)
    assert match, f"{shown!r} is not dollars with a decimal point and thousands separators"
    decimals = match.group(2)
    value = abs(Decimal(shown.replace("$", "").replace(",", "")))
    if value >= 1:
        assert len(decimals) == 2, f"{shown!r}: $1 and above shows cents"
    else:
        assert len(decimals) >= 2, shown
        significant = decimals.lstrip("0")
        assert len(significant) <= 4, f"{shown!r}: more than 4 significant digits below $1"
        assert len(decimals) == 2 or not decimals.endswith("0"), f"{shown!r}: trailing zeros past the cents"


def amounts_on(page: Page, path: str) -> list[str]:
    page.goto(path)
    texts = page.locator(FIGURES).all_inner_texts()
    shown = [amount for text in texts for amount in AMOUNT.findall(text)]
    assert shown, f"no amounts on {path}"
    for amount in shown:
        assert_follows_the_rule(amount)
    for axis in page.locator(".y-axis").all():
        ticks = axis.locator("span").all_inner_texts()
        assert len({tick.partition(".")[2].__len__() for tick in ticks}) == 1, f"{path}: axis ticks {ticks}"
        for tick in ticks:
            assert re.fullmatch(r"\$[\d,]+\.\d+", tick), tick
    return shown


def test_amounts_on_the_dashboard_balance_and_earnings_pages_follow_one_rule(
    browser: Browser, site: str, api: Api
) -> None:
    owner = api.sign_in()
    app = owner.create_app("Formats", acceptsCustomers=True, markup="1.5")
    customer, key = owner.customer_of(app, "1234.5")
    credit(customer.user["id"], "0.00036")  # a credit below a cent
    for cost in ("0.01325", "0.019875", "0.00036", "7.5", "53.00024"):
        assert record_call(site, key, {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 5, "cost": cost}) == 201

    page = sign_in(browser, site, 1280, customer.user["email"])
    dashboard = amounts_on(page, "/dashboard")
    balance = amounts_on(page, "/balance")
    page.screenshot(path=SHOTS / "money-formats-balance.png", full_page=True)
    assert "$1,234.50" in balance  # thousands separators, cents
    assert "$0.00036" in balance  # significant digits below $1
    assert dashboard

    page = sign_in(browser, site, 1280, owner.user["email"])
    earnings = amounts_on(page, "/earnings")
    page.screenshot(path=SHOTS / "money-formats-earnings.png", full_page=True)
    assert "$30.27" in earnings  # 0.5 × 60.553345 = 30.2766725, to the cent on the cards
    amounts_on(page, f"/apps/{app['id']}")
