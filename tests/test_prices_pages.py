"""The dashboard's prices: the app page's forms for allowed models and prices of one's own, and the public model
price list, server side and in a real Chromium at a desktop (1280 px) and a phone (390 px) width."""

import re
import uuid
from typing import Any

import pytest
from conftest import Session
from playwright.sync_api import Browser, Page, expect
from test_dashboard import SHOTS, record_call
from test_dashboard_polish import (
    WIDTHS,
    assert_no_sideways_scrolling,
    assert_on_screen,
    create_app,
    create_key,
    sign_in,
)
from test_pages import FORM, cookies_of, page

from echo_control import pages


@pytest.fixture
def site(live_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ECHO_PUBLIC_URL", live_server)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_server


@pytest.fixture
def plain(gateway: Any) -> Any:
    """Requests that carry exactly the cookies a test names."""
    from conftest import Api
    from werkzeug.test import Client

    api = Api(gateway)
    api.client = Client(gateway, use_cookies=False)
    return api


def post_prices(api: Any, user: Session, app_id: str, data: str, origin: str = "http://localhost") -> Any:
    headers = {**FORM, "Origin": origin, "Host": "localhost", "Cookie": f"echo_session={user.token}"}
    return api.call("POST", f"/apps/{app_id}/prices", data=data, headers=headers)


# --- server side -----------------------------------------------------------------------------------------


def test_each_prices_form_changes_its_part_and_keeps_the_rest(plain: Any, user: Session) -> None:
    app = user.create_app("Priced on its page")
    steps = [
        ("action=override&model=ft%3Agpt-4o-mini%3Aacme&inputPerMillion=0.3&outputPerMillion=1.2", "is saved"),
        # an unknown model (a fine-tune) may be allowed once it has a price of the app's own
        (
            "action=allowed&allow=listed&allowedModels=gpt-4o-mini%0D%0A+claude-sonnet-4-5+%0D%0A%0D%0A"
            "ft%3Agpt-4o-mini%3Aacme",
            "allowed: 3.",
        ),
        ("action=override&model=gpt-4o-mini&inputPerMillion=1&outputPerMillion=2&cacheReadPerMillion=0.5", "saved"),
        # the same model again, named with its provider: replaces the price rather than adding a second one
        ("action=override&model=openai%2Fgpt-4o-mini&inputPerMillion=0.2&outputPerMillion=0.8", "saved"),
        ("action=allowed&allow=all", "Every model is allowed."),
        ("action=remove&model=ft%3Agpt-4o-mini%3Aacme", "priced from the price list again"),
        ("action=allowed&allow=listed&allowedModels=gpt-4o-mini+claude-sonnet-4-5", "allowed: 2."),
    ]
    for data, said in steps:
        posted = post_prices(plain, user, app["id"], data)
        assert posted.status == 303 and posted.headers["Location"] == f"/apps/{app['id']}#notice"
        shown = page(plain, f"/apps/{app['id']}", echo_session=user.token, echo_flash=cookies_of(posted)["echo_flash"])
        assert '<div class="notice ok"' in shown.body and said in shown.body, data
    assert user.call("GET", f"/api/echo-apps/{app['id']}/prices").body == {
        "allowedModels": ["gpt-4o-mini", "claude-sonnet-4-5"],
        "overrides": [
            {
                "model": "openai/gpt-4o-mini",
                "inputPerMillion": "0.200000",
                "outputPerMillion": "0.800000",
                "cacheReadPerMillion": None,
                "cacheWritePerMillion": None,
            }
        ],
    }
    assert post_prices(plain, user, app["id"], "action=allowed&allow=all&allowedModels=ignored").status == 303
    assert user.call("GET", f"/api/echo-apps/{app['id']}/prices").body["allowedModels"] is None


REFUSED = [
    ("action=override&model=gpt-4o&inputPerMillion=abc&outputPerMillion=1", "Input price must be USD per million"),
    ("action=override&model=gpt-4o&outputPerMillion=1", "Input price is required."),
    ("action=override&model=gpt+4o&inputPerMillion=1&outputPerMillion=1", "Model must be a model name such as"),
    ("action=override&model=gpt-4o&inputPerMillion=1&outputPerMillion=10001", "Output price must be USD per"),
    ("action=remove&model=never-priced", "There is no price of your own for never-priced."),
    ("action=allowed&allow=listed&allowedModels=gpt-4o+GPT-4o", "Allowed models: 'GPT-4o' is the same model as"),
    ("action=allowed&allowedModels=gpt-4o", "Allowed models: please choose every model or the models listed."),
    ("action=allowed&allow=listed&allowedModels=" + "+".join(f"m{i}" for i in range(501)), "can list at most 500"),
    ("action=steal", "This form: please choose one of the options."),
    (
        "action=allowed&allow=listed&allowedModels=gpt-4o+no-such-model-xyz",
        "Allowed models: 'no-such-model-xyz' is not in the price list; check its name, or give it a price of your own",
    ),
]


@pytest.mark.parametrize(("data", "message"), REFUSED, ids=[m for _, m in REFUSED])
def test_a_refused_prices_form_says_why_on_the_page_and_changes_nothing(
    plain: Any, user: Session, data: str, message: str
) -> None:
    app = user.create_app("Refusals")
    before = user.call("GET", f"/api/echo-apps/{app['id']}/prices").body
    posted = post_prices(plain, user, app["id"], data)
    assert posted.status == 303 and posted.headers["Location"] == f"/apps/{app['id']}#notice"
    shown = page(plain, f"/apps/{app['id']}", echo_session=user.token, echo_flash=cookies_of(posted)["echo_flash"])
    notice = re.search(r'<div class="notice bad" role="status"[^>]*>(.*?)</div>', shown.body, re.S)
    assert notice is not None and message in notice.group(1).replace("&#39;", "'"), shown.body[:300]
    assert user.call("GET", f"/api/echo-apps/{app['id']}/prices").body == before


def test_a_price_for_a_model_the_app_does_not_allow_is_refused_beside_the_form(plain: Any, user: Session) -> None:
    app = user.create_app("Listed")
    assert post_prices(plain, user, app["id"], "action=allowed&allow=listed&allowedModels=gpt-4o").status == 303
    before = user.call("GET", f"/api/echo-apps/{app['id']}/prices").body
    posted = post_prices(
        plain, user, app["id"], "action=override&model=gpt-4o-mini&inputPerMillion=1&outputPerMillion=2"
    )
    shown = page(plain, f"/apps/{app['id']}", echo_session=user.token, echo_flash=cookies_of(posted)["echo_flash"])
    notice = re.search(r'<div class="notice bad" role="status"[^>]*>(.*?)</div>', shown.body, re.S)
    assert notice is not None
    assert (
        "Prices: &#39;gpt-4o-mini&#39; is not among the allowed models; allow it, or remove its price"
        in notice.group(1)
    )
    assert user.call("GET", f"/api/echo-apps/{app['id']}/prices").body == before


def test_a_refused_price_comes_back_filled_in(plain: Any, user: Session) -> None:
    app = user.create_app("Refill")
    posted = post_prices(
        plain, user, app["id"], "action=override&model=my-model&inputPerMillion=1.5&outputPerMillion=lots"
    )
    shown = page(plain, f"/apps/{app['id']}", echo_session=user.token, echo_flash=cookies_of(posted)["echo_flash"])
    assert 'name="model" maxlength="200" required placeholder="ft:gpt-4o-mini:acme::abc123" value="my-model"' in (
        shown.body
    )
    assert 'value="1.5"' in shown.body and 'value="lots"' in shown.body


def test_only_the_owner_changes_prices_and_only_from_this_site(plain: Any, user: Session, other_user: Session) -> None:
    app = user.create_app("Guarded")
    data = "action=allowed&allow=listed&allowedModels=gpt-4o"
    forged = post_prices(plain, user, app["id"], data, origin="https://evil.example")
    assert forged.status == 403 and "echo_flash" not in cookies_of(forged)
    stranger = post_prices(plain, other_user, app["id"], data)
    assert stranger.status == 404 and "<nav>" in stranger.body  # the 404 page, with the stranger's navigation
    signed_out = plain.call("POST", f"/apps/{app['id']}/prices", data=data, headers={**FORM, "Host": "localhost"})
    assert signed_out.status == 303 and signed_out.headers["Location"].startswith("/sign-in")
    assert user.call("GET", f"/api/echo-apps/{app['id']}/prices").body["allowedModels"] is None


def test_the_model_list_is_public_and_searchable(plain: Any, user: Session) -> None:
    signed_out = plain.call("GET", "/models", query={"q": "GPT-4o-mini"})
    assert signed_out.status == 200 and signed_out.headers["Content-Type"].startswith("text/html")
    assert "<nav>" not in signed_out.body and 'href="/sign-in"' in signed_out.body
    rows = re.findall(r"<tr><td class=\"model-name\"><code>([^<]+)</code>", signed_out.body)
    assert "gpt-4o-mini" in rows and all("gpt-4o-mini" in r.lower() for r in rows)
    assert "$0.15" in signed_out.body and "$0.60" in signed_out.body
    signed_in = page(plain, "/models", echo_session=user.token)
    assert "<nav>" in signed_in.body and 'class="active">Models' in signed_in.body
    assert len(re.findall(r'<td class="model-name">', signed_in.body)) == 100  # a page of everything without a query
    nothing = plain.call("GET", "/models", query={"q": "no-such-model-anywhere"})
    assert nothing.status == 200 and "No model matches" in nothing.body
    assert plain.call("GET", "/models", query={"q": "x" * 101}).status == 400  # an error page, not JSON


def test_money_per_million_reads_as_dollars() -> None:
    assert pages.usd("2.500000") == "$2.50" and pages.usd("0.075") == "$0.075" and pages.usd(None) == "–"


# --- in Chromium ---------------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
def test_an_owner_sets_prices_on_the_app_page(browser: Browser, site: str, width: int) -> None:
    page_ = sign_in(browser, site, width)
    create_app(page_, "Fine-tuned bot")
    key = create_key(page_)
    prices = page_.locator("#prices")
    expect(prices.locator("#allowed-summary")).to_have_text("Every model. Calls for any model are metered.")
    expect(prices).to_contain_text("No prices of your own")

    # allow two models only: a model the price list does not know needs a price of the app's own first
    page_.check("#allowed-form input[value=listed]")
    page_.fill("#allowed-form textarea", "gpt-4o-mini\nft:gpt-4o-mini:acme::abc123")
    page_.click("text=Save allowed models")
    expect(page_.locator(".notice.bad")).to_have_text(
        "Allowed models: 'ft:gpt-4o-mini:acme::abc123' is not in the price list; check its name, or give it a price "
        "of your own"
    )
    page_.check("#allowed-form input[value=listed]")
    page_.fill("#allowed-form textarea", "gpt-4o-mini")
    page_.click("text=Save allowed models")
    expect(page_.locator(".notice.ok")).to_have_text("Models allowed: 1.")
    expect(page_.locator("#allowed-list .pill")).to_have_text(["gpt-4o-mini"])
    expect(page_.locator("#allowed-form input[value=listed]")).to_be_checked()

    # a price for a known model the app does not allow is refused
    page_.fill("#override-form input[name=model]", "gpt-4o")
    page_.fill("#override-form input[name=inputPerMillion]", "1")
    page_.fill("#override-form input[name=outputPerMillion]", "2")
    page_.click("#save-price")
    expect(page_.locator(".notice.bad")).to_have_text(
        "Prices: 'gpt-4o' is not among the allowed models; allow it, or remove its price"
    )

    # a refused price says why and keeps what was typed
    page_.fill("#override-form input[name=model]", "ft:gpt-4o-mini:acme::abc123")
    page_.fill("#override-form input[name=inputPerMillion]", "0.30")
    page_.fill("#override-form input[name=outputPerMillion]", "one")
    page_.click("#save-price")
    notice = page_.locator(".notice.bad")
    expect(notice).to_have_text("Output price must be USD per million tokens from 0 to 10,000 such as 2.50.")
    assert_on_screen(page_, notice)
    expect(page_.locator("#override-form input[name=inputPerMillion]")).to_have_value("0.30")
    page_.fill("#override-form input[name=outputPerMillion]", "1.20")
    page_.click("#save-price")
    expect(page_.locator(".notice.ok")).to_have_text(
        "Your price for ft:gpt-4o-mini:acme::abc123 is saved, and ft:gpt-4o-mini:acme::abc123 is allowed."
    )
    expect(page_.locator("#allowed-list .pill")).to_have_text(["gpt-4o-mini", "ft:gpt-4o-mini:acme::abc123"])
    row = page_.locator("#override-table tr", has_text="ft:gpt-4o-mini:acme::abc123")
    expect(row).to_contain_text("$0.30")
    expect(row).to_contain_text("$1.20")
    for cell in (row.locator("td.num").nth(0), row.locator("td.num").nth(1), row.locator("text=Remove")):
        assert_on_screen(page_, cell)
    assert_no_sideways_scrolling(page_)
    page_.locator("#prices").screenshot(path=SHOTS / f"app-prices-{width}.png")

    # the key's calls follow the page: the fine-tune is priced by the override, other models are refused
    from conftest import credit

    credit(_user_id(site, page_), "5")
    fine_tune = {"model": "ft:gpt-4o-mini:acme::abc123", "inputTokens": 1_000_000, "outputTokens": 1_000_000}
    assert record_call(site, key, fine_tune) == 201
    assert record_call(site, key, {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1}) == 403
    page_.reload()
    expect(page_.locator("#transactions")).to_contain_text("$1.50")  # $0.30 + $1.20

    # allowing every model again, then removing the price
    page_.check("#allowed-form input[value=all]")
    page_.click("text=Save allowed models")
    expect(page_.locator("#allowed-summary")).to_have_text("Every model. Calls for any model are metered.")
    row.locator("text=Remove").click()
    expect(page_.locator(".notice.ok")).to_have_text("ft:gpt-4o-mini:acme::abc123 is priced from the price list again.")
    expect(page_.locator("#override-table")).to_have_count(0)
    assert record_call(site, key, {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1}) == 201


def _user_id(site: str, page_: Page) -> str:
    """The signed-in person's id, read with their own session cookie."""
    import json
    import urllib.request

    cookie = next(c for c in page_.context.cookies() if c["name"] == "echo_session")["value"]
    request = urllib.request.Request(f"{site}/api/me", headers={"Authorization": f"Bearer {cookie}"})
    with urllib.request.urlopen(request) as response:
        return str(json.load(response)["user"]["id"])


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
def test_the_model_price_list_searches_on_a_desktop_and_a_phone(browser: Browser, site: str, width: int) -> None:
    context = browser.new_context(viewport={"width": width, "height": 844}, base_url=site)
    page_ = context.new_page()
    page_.goto("/models")
    expect(page_.locator("h1")).to_have_text("Model prices")
    assert page_.locator("#models tr").count() == 101  # a page of 100, and the heading
    page_.fill("#model-search input[name=q]", "claude-sonnet-4-5")
    page_.click("#model-search button")
    expect(page_).to_have_url(re.compile(r"/models\?q=claude-sonnet-4-5$"))
    rows = page_.locator("#models tr").filter(has=page_.locator("td"))
    assert rows.count() >= 1
    assert all("claude-sonnet-4-5" in text.lower() for text in rows.all_inner_texts())
    first = rows.first
    expect(first).to_contain_text("$3.00")  # input
    expect(first).to_contain_text("$15.00")  # output
    for cell in (first.locator("code"), first.locator("td.num").nth(1)):
        assert_on_screen(page_, cell)
    assert_no_sideways_scrolling(page_)
    assert_on_screen(page_, page_.locator("text=Sign in"))
    page_.screenshot(path=SHOTS / f"models-{width}.png", full_page=False)
    page_.fill("#model-search input[name=q]", f"nothing-{uuid.uuid4().hex[:6]}")
    page_.click("#model-search button")
    expect(page_.locator(".empty")).to_contain_text("No model matches")
    context.close()
