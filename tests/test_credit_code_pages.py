"""Credit codes on the pages, in a real Chromium at 1280 px: an admin makes a code on /admin/credit-codes, a user
redeems it on the balance page and sees the credit among their lots with its expiry; refusals are said in words."""

import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from conftest import ADMIN_EMAIL
from playwright.sync_api import Browser, expect
from test_dashboard import SHOTS, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def site(live_server: str) -> str:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_server


def test_an_admin_makes_a_code_and_a_user_redeems_it_once(browser: Browser, site: str) -> None:
    admin = sign_in(browser, site, ADMIN_EMAIL)
    admin.click("#admin-credit-codes")
    expect(admin).to_have_url(f"{site}/admin/credit-codes")
    admin.fill("input[name=amount]", "3.50")
    admin.fill("input[name=maxUses]", "2")
    admin.fill("input[name=creditDays]", "30")
    admin.click("#create-code button[type=submit]")
    code = admin.locator("#new-code").inner_text().strip()
    assert len(code) == 14
    row = admin.locator("#codes tr", has_text=code)
    expect(row).to_contain_text("$3.50")
    expect(row).to_contain_text("0 of 2")
    expect(row).to_contain_text("30 days")
    admin.screenshot(path=SHOTS / "credit-codes-1280.png", full_page=True)

    user = sign_in(browser, site, f"redeem-{uuid.uuid4().hex[:8]}@example.com")
    expect(user.locator("#admin-credit-codes")).to_have_count(0)
    user.goto("/balance")
    user.fill("#redeem input[name=code]", code.lower())  # typed as people do
    redeemed_at = datetime.now(UTC)
    user.click("#redeem button[type=submit]")
    expect(user.locator("#redeem .notice.ok")).to_contain_text("Code redeemed: $3.50 added")
    expect(user.locator("#balance")).to_have_text("$3.50")
    lot = user.locator("#lots tr", has_text="Credit code")
    expect(lot).to_contain_text("$3.50")
    # the grant lasts 30 days from its redemption (minutes may tick over between the click and the record)
    expiry = lot.locator("td").nth(2).inner_text()
    assert expiry in {(redeemed_at + timedelta(days=30, minutes=m)).strftime("%Y-%m-%d %H:%M") for m in (0, 1)}

    user.fill("#redeem input[name=code]", code)
    user.click("#redeem button[type=submit]")
    expect(user.locator("#redeem .notice.bad")).to_have_text("You have redeemed this code already")
    expect(user.locator("#redeem input[name=code]")).to_have_value(code)  # kept as typed
    expect(user.locator("#balance")).to_have_text("$3.50")
    user.screenshot(path=SHOTS / "credit-code-redeemed-1280.png", full_page=True)

    admin.goto("/admin/credit-codes")
    expect(admin.locator("#codes tr", has_text=code)).to_contain_text("1 of 2")


def test_refused_codes_say_why_beside_the_form(browser: Browser, site: str, api) -> None:
    admin = api.sign_in(ADMIN_EMAIL)
    used_up = admin.call("POST", "/api/credit-codes", {"amount": "1", "maxUses": 1}).body["code"]
    expired = admin.call(
        "POST", "/api/credit-codes", {"amount": "1", "maxUses": 5, "expiresAt": "2020-01-01T00:00:00Z"}
    ).body["code"]
    assert api.sign_in().call("POST", "/api/credit-codes/redeem", {"code": used_up}).status == 201

    user = sign_in(browser, site, f"refused-{uuid.uuid4().hex[:8]}@example.com")
    user.goto("/balance")
    for typed, said in [
        ("NOPE-NOPE-NOPE", "No such credit code"),
        (used_up, "This code has been used up"),
        (expired, "This code has expired"),
    ]:
        user.fill("#redeem input[name=code]", typed)
        user.click("#redeem button[type=submit]")
        expect(user.locator("#redeem .notice.bad")).to_have_text(said)
        expect(user.locator("#redeem input[name=code]")).to_have_value(typed)
    expect(user.locator("#balance")).to_have_text("$0.00")
    expect(user.locator("#lots")).to_have_count(0)


def test_only_admins_see_or_make_codes_and_posts_must_come_from_this_site(browser: Browser, site: str, api) -> None:
    user = sign_in(browser, site, f"plain-{uuid.uuid4().hex[:8]}@example.com")
    response = user.goto("/admin/credit-codes")
    assert response is not None and response.status == 403
    expect(user.locator("#codes")).to_have_count(0)

    victim, admin = api.sign_in(), api.sign_in(ADMIN_EMAIL)
    codes_before = admin.call("GET", "/api/credit-codes").body["codes"]
    for path, body in [("/balance/redeem", b"code=ABCD-EFGH-JKLM"), ("/admin/credit-codes", b"amount=5&maxUses=9")]:
        request = urllib.request.Request(
            f"{site}{path}",
            data=body,
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
    assert admin.call("GET", "/api/credit-codes").body["codes"] == codes_before
