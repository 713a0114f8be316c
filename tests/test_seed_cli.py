"""What the seed's SDK, CLI and proxy read beyond our own contract: the app beside the balance, app totals, who a key
is for, and the CLI's sign-in page (/cli-auth), in a real Chromium."""

import uuid
from decimal import Decimal

import pytest
from conftest import Api, Session, credit
from playwright.sync_api import Browser, expect
from test_dashboard_polish import WIDTHS, assert_no_sideways_scrolling, create_app, open_page, sign_in

from echo_control import keys

CALL = {"model": "gpt-4o", "inputTokens": 1000, "outputTokens": 500, "cost": "0.25"}


def test_balance_with_echo_app_id_names_the_app_and_its_part(api: Api, user: Session) -> None:
    mine, other = user.create_app("Mine"), user.create_app("Other")
    key = user.create_key(mine["id"])["key"]
    credit(user.user["id"], "5")
    assert api.call("POST", "/api/transactions", key, CALL).status == 201

    plain = user.call("GET", "/api/balance").body
    assert "echoAppId" not in plain  # the user-wide balance, as before
    named = user.call("GET", f"/api/balance?echoAppId={mine['id']}")
    assert named.status == 200, named.body
    assert (named.body["echoAppId"], named.body["echoAppName"]) == (mine["id"], "Mine")
    assert named.body["balance"] == plain["balance"] == "4.750000"  # the balance stays the user's
    assert named.body["app"] == {"totalPaid": "0.000000", "totalSpent": "0.250000"}
    on_other = user.call("GET", f"/api/balance?echoAppId={other['id']}").body
    assert on_other["echoAppName"] == "Other" and Decimal(on_other["app"]["totalSpent"]) == 0

    by_key = api.call("GET", "/api/balance", key).body  # a key: its own app, as the SDK's getBalance() expects
    assert (by_key["echoAppId"], by_key["echoAppName"]) == (mine["id"], "Mine")
    assert api.call("GET", f"/api/balance?echoAppId={other['id']}", key).status == 404


def test_the_apps_part_counts_what_was_paid_from_it(api: Api, user: Session) -> None:
    from tests.test_payments import completed_event, deliver

    app = user.create_app("Bought from")
    key = user.create_key(app["id"])["key"]
    link = api.call("POST", "/api/stripe/payment-link", key, {"amount": "20"}).body  # the SDK buys for its app
    assert deliver(api, completed_event(link["paymentId"], user.user["id"], link["sessionId"], 2000)).status == 200
    shown = api.call("GET", "/api/balance", key).body
    assert shown["app"] == {"totalPaid": "20.000000", "totalSpent": "0.000000"} and shown["balance"] == "20.000000"
    elsewhere = user.create_app("Elsewhere")
    assert user.call("GET", f"/api/balance?echoAppId={elsewhere['id']}").body["app"]["totalPaid"] == "0.000000"


def test_balance_for_someone_elses_app_is_404(user: Session, other_user: Session) -> None:
    theirs = other_user.create_app("Theirs")
    for app_id in (theirs["id"], str(uuid.uuid4()), "not-an-id"):
        assert user.call("GET", f"/api/balance?echoAppId={app_id}").status == 404


def test_app_list_entries_carry_total_tokens_and_cost(api: Api, user: Session) -> None:
    app = user.create_app("Counted")
    key = user.create_key(app["id"])["key"]
    credit(user.user["id"], "5")
    for _ in range(2):
        assert api.call("POST", "/api/transactions", key, CALL).status == 201
    [entry] = [a for a in user.call("GET", "/api/echo-apps").body["echoApps"] if a["id"] == app["id"]]
    assert entry["totalTokens"] == 3000 and entry["totalCost"] == "0.500000"
    assert entry["totals"]["cost"] == entry["totalCost"]


def test_validate_api_key_says_who_and_which_app(api: Api) -> None:
    owner = api.sign_in(f"proxy-{uuid.uuid4().hex[:6]}@example.com")
    app = owner.create_app("Proxied")
    key = owner.create_key(app["id"])["key"]
    reply = api.call("POST", "/api/validate-api-key", json_body={"apiKey": key})
    assert reply.status == 200 and reply.body["valid"] is True
    assert reply.body["user"] == {"id": owner.user["id"], "email": owner.user["email"], "name": None}
    assert reply.body["echoApp"] == {"id": app["id"], "name": "Proxied"}
    refused = api.call("POST", "/api/validate-api-key", json_body={"apiKey": "echo_" + "x" * 40}).body
    assert refused["valid"] is False and refused.get("user") is None


# --- /cli-auth ------------------------------------------------------------------------------------------------


def test_cli_auth_needs_a_sign_in_first(api: Api) -> None:
    reply = api.call("GET", "/cli-auth")
    assert reply.status == 303 and reply.headers["Location"] == "/sign-in?next=%2Fcli-auth"


def test_cli_auth_makes_a_key_only_for_an_app_one_may_use(api: Api, user: Session, other_user: Session) -> None:
    theirs = other_user.create_app("Closed")
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://localhost", "Host": "localhost"}
    reply = api.call(
        "POST",
        "/cli-auth",
        data=f"echoAppId={theirs['id']}&name=sneaky",
        headers={**form, "Cookie": f"echo_session={user.token}"},
    )
    assert reply.status == 303 and reply.headers["Location"] == "/cli-auth#notice"
    assert user.call("GET", "/api/api-keys").body["apiKeys"] == []


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
def test_cli_auth_page_gives_a_key_for_the_chosen_app_once(
    browser: Browser, live_server: str, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    monkeypatch.setenv("ECHO_PUBLIC_URL", live_server)
    page = sign_in(browser, live_server, width)
    create_app(page, "First app")
    create_app(page, "CLI app")
    page.goto("/cli-auth")
    expect(page.locator("h1")).to_have_text("Sign in the Echo CLI")
    page.select_option("#cli-app", label="CLI app")
    page.fill("#cli-key-name", "laptop")
    page.click("#create-cli-key")
    expect(page).to_have_url(f"{live_server}/cli-auth")
    key = page.locator("#new-key-value").inner_text().strip()
    found = keys.authenticate(key)
    assert found is not None
    validated = keys.validate(key)
    assert validated.echo_app is not None and validated.echo_app.name == "CLI app"
    assert_no_sideways_scrolling(page)
    page.reload()  # shown once
    expect(page.locator("#new-key")).to_have_count(0)
    expect(page.locator("#cli-key-form")).to_be_visible()


@pytest.mark.browser
def test_cli_auth_signed_out_signs_in_and_comes_back(browser: Browser, live_server: str) -> None:
    page = open_page(browser, live_server, 1280)
    page.goto("/cli-auth")
    expect(page).to_have_url(f"{live_server}/sign-in?next=%2Fcli-auth")
    page.fill("input[name=email]", f"cli-{uuid.uuid4().hex[:8]}@example.com")
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{live_server}/cli-auth")
    expect(page.locator("#no-apps")).to_be_visible()
