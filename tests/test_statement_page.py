"""The balance page shows the statement (with the balance after each entry), what is held, and a CSV of it,
in a real Chromium at a desktop and a phone width."""

import csv
import io
import uuid
from decimal import Decimal

import pytest
from conftest import credit
from playwright.sync_api import Browser, expect
from test_dashboard import SHOTS
from test_dashboard_polish import WIDTHS, assert_no_sideways_scrolling, assert_on_screen, sign_in

from echo_control import db, holds, keys
from echo_control.identity import Caller
from echo_control.models import HoldCreate

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", WIDTHS)
def test_the_balance_page_shows_the_statement_and_what_is_held(browser: Browser, live_server: str, width: int) -> None:
    email = f"statement-{uuid.uuid4().hex[:8]}@example.com"
    page = sign_in(browser, live_server, width, email)
    user = db.user_by_email(email)
    assert user is not None
    credit(str(user["id"]), "5.00")
    app = db.insert_app(user["id"], "Statement app", None, Decimal(1))
    key = keys.generate_key()
    row = db.insert_api_key(user["id"], app["id"], None, keys.key_hash(key), key[:12], key[-4:], None)
    caller = Caller(user["id"], email, "user", "apiKey", app["id"], row["id"], Decimal(1))
    holds.create_hold(caller, HoldCreate(amount=Decimal("1.25")), None)

    page.goto("/balance")
    expect(page.locator("#held")).to_have_text("$1.25")
    expect(page.locator("#available")).to_have_text("$3.75")
    first = page.locator("#statement tr").nth(1)
    expect(first).to_contain_text("+$5.00")
    assert_on_screen(page, first.locator("td.num").first)
    assert_no_sideways_scrolling(page)
    page.screenshot(path=SHOTS / f"statement-{width}.png", full_page=True)

    with page.expect_download() as download:
        page.click("#statement-csv")
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert [(r["kind"], Decimal(r["balanceAfter"])) for r in rows] == [("admin_adjustment", Decimal("5"))]
