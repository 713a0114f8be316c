"""A key's spend limit is shown and set on the app page, in a real Chromium at a desktop and a phone width."""

import pytest
from playwright.sync_api import Browser, expect
from test_dashboard import SHOTS
from test_dashboard_polish import (
    WIDTHS,
    assert_no_sideways_scrolling,
    assert_on_screen,
    create_app,
    create_key,
    sign_in,
)

from echo_control import keys

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", WIDTHS)
def test_the_app_page_sets_and_removes_a_keys_spend_limit(
    browser: Browser, live_server: str, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    monkeypatch.setenv("ECHO_PUBLIC_URL", live_server)
    page = sign_in(browser, live_server, width)
    create_app(page, "Limited app")
    key = create_key(page, "limited")
    row = page.locator("#keys tr", has_text="limited")
    expect(row.locator(".key-limit")).to_have_text("No spend limit")
    row.locator(".key-limit-edit summary").click()
    row.locator("input[name=spendLimit]").fill("12.50")
    row.locator("select[name=limitPeriod]").select_option("day")
    assert_on_screen(page, row.locator(".key-limit-edit button"))
    row.locator(".key-limit-edit button").click()
    expect(page.locator(".notice")).to_contain_text("may spend $12.50 per day")
    row = page.locator("#keys tr", has_text="limited")
    expect(row.locator(".key-limit")).to_have_text("Limit $12.50 a day · spent $0.00")
    assert_no_sideways_scrolling(page)
    page.screenshot(path=SHOTS / f"key-limit-{width}.png", full_page=True)
    found = keys.authenticate(key)
    assert found is not None
    [stored] = [k for k in keys.keys_for_app(found["user_id"], found["echo_app_id"]) if k.name == "limited"]
    assert (str(stored.spend_limit), stored.limit_period) == ("12.500000", "day")

    row.locator(".key-limit-edit summary").click()
    row.locator("input[name=spendLimit]").fill("")
    row.locator(".key-limit-edit button").click()
    expect(page.locator("#keys tr", has_text="limited").locator(".key-limit")).to_have_text("No spend limit")

    row = page.locator("#keys tr", has_text="limited")
    row.locator(".key-limit-edit summary").click()
    row.locator("input[name=spendLimit]").evaluate("el => { el.removeAttribute('min'); el.value = '-5'; }")
    row.locator(".key-limit-edit button").click()
    expect(page.locator(".notice.bad")).to_be_visible()
    expect(page.locator("#keys tr", has_text="limited").locator(".key-limit")).to_have_text("No spend limit")
