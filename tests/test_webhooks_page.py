"""The Webhooks pages in a real Chromium, at a desktop and a phone width: add an endpoint (its secret shown once),
see its deliveries with each attempt's status code, resend one; a disabled endpoint is told on the dashboard."""

import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect
from standardwebhooks import Webhook
from test_dashboard import SHOTS
from test_dashboard_polish import WIDTHS, assert_no_sideways_scrolling, assert_on_screen, sign_in

from echo_control import db, events, webhook_delivery
from tests.test_webhooks import Receiver, running_receiver

pytestmark = pytest.mark.browser


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state


@pytest.fixture
def site(live_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ECHO_PUBLIC_URL", live_server)
    monkeypatch.setenv("ECHO_WEBHOOKS_ALLOW_PRIVATE", "true")  # the receiver is on loopback
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_server


def emit_payment(email: str) -> None:
    user = db.user_by_email(email)
    assert user is not None
    with db.transaction() as conn:
        events.emit(conn, user["id"], events.PAYMENT_SUCCEEDED, {"paymentId": str(uuid.uuid4()), "amount": "20.00"})


@pytest.mark.parametrize("width", WIDTHS)
def test_add_an_endpoint_see_its_failed_attempt_and_resend_it(
    browser: Browser, site: str, receiver: Receiver, width: int
) -> None:
    email = f"hooks-{uuid.uuid4().hex[:8]}@example.com"
    page = sign_in(browser, site, width, email)
    page.click("nav >> text=Webhooks")
    expect(page).to_have_url(f"{site}/webhooks")
    expect(page.locator(".empty")).to_contain_text("No endpoints yet")
    page.fill("input[name=url]", receiver.url)
    page.uncheck("input[name='event:balance.low']")
    assert_on_screen(page, page.locator("#add-webhook-button"))
    page.click("#add-webhook-button")
    secret = page.locator("#new-webhook-secret").inner_text()
    assert secret.startswith("whsec_")
    assert_no_sideways_scrolling(page)
    page.screenshot(path=SHOTS / f"webhooks-{width}.png", full_page=True)
    page.reload()  # shown once
    expect(page.locator("#new-webhook-secret")).to_have_count(0)
    row = page.locator("#webhooks tr", has_text=receiver.url)
    expect(row).to_contain_text("active")
    expect(row).not_to_contain_text("balance.low")

    receiver.statuses = [500]
    emit_payment(email)
    webhook_delivery.deliver_due(200)
    row.locator("a").click()
    delivery = page.locator("#deliveries tr.delivery")
    expect(delivery).to_have_count(1)
    expect(delivery).to_contain_text("payment.succeeded")
    expect(delivery).to_contain_text("pending")
    expect(delivery.locator(".status-code")).to_have_text(["500"])
    assert_on_screen(page, delivery.locator("text=Resend"))
    delivery.locator("text=Resend").click()
    expect(page.locator(".notice.ok")).to_contain_text("on its way again")
    webhook_delivery.deliver_due(200)
    page.reload()
    delivery = page.locator("#deliveries tr.delivery")
    expect(delivery).to_contain_text("succeeded")
    expect(delivery.locator(".status-code")).to_have_text(["500", "200"])
    assert_no_sideways_scrolling(page)
    page.screenshot(path=SHOTS / f"webhook-deliveries-{width}.png", full_page=True)
    # what arrived verifies with the secret the page showed once
    assert len(receiver.received) == 2
    for got in receiver.received:
        assert Webhook(secret).verify(got.body, got.headers)["type"] == "payment.succeeded"

    page.locator("summary", has_text="Remove this endpoint").click()
    page.click("text=Yes, remove")
    expect(page).to_have_url(f"{site}/webhooks")
    expect(page.locator(".notice.ok")).to_contain_text("is removed")
    expect(page.locator("#webhooks")).to_have_count(0)


def test_a_bad_url_is_said_in_words_and_an_endpoint_disabled_is_told_on_the_dashboard(
    browser: Browser, site: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = f"hooks-{uuid.uuid4().hex[:8]}@example.com"
    page = sign_in(browser, site, 1280, email)
    page.goto("/webhooks")
    monkeypatch.setenv("ECHO_WEBHOOKS_ALLOW_PRIVATE", "false")
    page.fill("input[name=url]", "https://169.254.169.254/latest/meta-data")
    page.click("#add-webhook-button")
    expect(page.locator(".notice.bad")).to_contain_text("private")
    expect(page.locator("input[name=url]")).to_have_value("https://169.254.169.254/latest/meta-data")
    monkeypatch.setenv("ECHO_WEBHOOKS_ALLOW_PRIVATE", "true")
    page.fill("input[name=url]", receiver.url)
    page.click("#add-webhook-button")
    expect(page.locator("#new-webhook-secret")).to_be_visible()
    page.fill("input[name=lowBalanceThreshold]", "7.5")
    page.click("#balance-alert button")
    expect(page.locator(".notice.ok")).to_contain_text("below $7.50")
    expect(page.locator("input[name=lowBalanceThreshold]")).to_have_value("7.500000")

    receiver.statuses = [500]
    emit_payment(email)
    db.connection().execute(
        "UPDATE webhook_endpoints SET failing_since = now() - interval '6 days' WHERE url = %s", [receiver.url]
    )
    webhook_delivery.deliver_due(200)
    page.goto("/dashboard")
    expect(page.locator("#disabled-webhooks")).to_contain_text(receiver.url)
    page.goto("/webhooks")
    expect(page.locator("#disabled-webhooks")).to_be_visible()
    expect(page.locator("#webhooks tr", has_text=receiver.url)).to_contain_text("disabled")
