"""A newcomer's first hour with the dashboard, in a real Chromium at a desktop (1280 px) and a phone (390 px)
width: a refused form says why beside that form, on screen, in words that name the field and its range, and
keeps what was typed."""

import uuid

import pytest
from conftest import Api, credit
from playwright.sync_api import Browser, Locator, Page, expect
from test_dashboard import SHOTS, record_call
from test_dashboard_polish import assert_no_sideways_scrolling, assert_on_screen, create_app, create_key, sign_in

pytestmark = pytest.mark.browser
WIDTHS = [1280, 390]


@pytest.fixture
def site(live_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ECHO_PUBLIC_URL", live_server)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_server


def assert_in_view(page: Page, element: Locator) -> None:
    """On screen both ways: inside the viewport's height too, so nobody has to scroll to find it."""
    assert_on_screen(page, element)
    box = element.bounding_box()
    height = page.viewport_size["height"] if page.viewport_size else 0
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height + 0.5, (box, height)


def long_app_page(browser: Browser, site: str, width: int) -> Page:
    """An app page as a busy owner sees it: three keys, so the forms below sit far under the fold."""
    page = sign_in(browser, site, width)
    create_app(page, "Busy app")
    for name in ("web", "mobile", "batch"):
        create_key(page, name)
    return page


@pytest.mark.parametrize("width", WIDTHS)
def test_a_refused_price_is_said_beside_the_price_form(browser: Browser, site: str, width: int) -> None:
    page = long_app_page(browser, site, width)
    page.fill("#override-form input[name=model]", "ft:gpt-4o-mini:acme::abc123")
    page.fill("#override-form input[name=inputPerMillion]", "0.30")
    page.fill("#override-form input[name=outputPerMillion]", "one")
    page.click("#save-price")
    notice = page.locator("#overrides .notice.bad")
    expect(notice).to_have_text("Output price must be USD per million tokens from 0 to 10,000 such as 2.50.")
    assert_in_view(page, notice)
    expect(page.locator(".notice")).to_have_count(1)  # beside the form, not also at the top
    expect(page.locator("#override-form input[name=outputPerMillion]")).to_have_value("one")
    page.screenshot(path=SHOTS / f"first-hour-price-refused-{width}.png")
    page.fill("#override-form input[name=outputPerMillion]", "1.20")
    page.click("#save-price")
    saved = page.locator("#overrides .notice.ok")
    expect(saved).to_have_text("Your price for ft:gpt-4o-mini:acme::abc123 is saved.")
    assert_in_view(page, saved)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_refused_spend_limit_names_the_field_and_range_in_its_row_and_keeps_the_value(
    browser: Browser, site: str, width: int
) -> None:
    page = long_app_page(browser, site, width)
    row = page.locator("#keys tr", has_text="mobile")
    row.locator(".key-limit-edit summary").click()
    limit = row.locator("input[name=spendLimit]")
    limit.evaluate("el => el.removeAttribute('min')")  # as a browser without the check, or a script, sends it
    limit.fill("-3")
    row.locator("select[name=limitPeriod]").select_option("day")
    row.locator(".key-limit-edit button").click()
    row = page.locator("#keys tr", has_text="mobile")
    notice = row.locator(".notice.bad")
    expect(notice).to_have_text("Spend limit must be from $0 to $1,000,000, such as 50.00.")
    assert_in_view(page, notice)
    expect(page.locator(".notice")).to_have_count(1)
    expect(row.locator("input[name=spendLimit]")).to_have_value("-3")
    expect(row.locator("input[name=spendLimit]")).to_be_visible()  # its editor open again
    expect(row.locator("select[name=limitPeriod]")).to_have_value("day")
    other = page.locator("#keys tr", has_text="web")
    expect(other.locator(".key-limit-edit input[name=spendLimit]")).to_be_hidden()  # the other keys' stay closed
    assert_no_sideways_scrolling(page)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("amount", ["0.5", "20000"])
def test_buy_credits_says_the_range_beside_its_form(browser: Browser, site: str, width: int, amount: str) -> None:
    page = long_app_page(browser, site, width)
    buy = page.locator("form[action='/credits']")
    buy.locator("input[name=amount]").evaluate("el => el.removeAttribute('min')")
    buy.locator("input[name=amount]").fill(amount)
    page.click("#buy")
    notice = page.locator(".card", has=page.locator("#buy")).locator(".notice.bad")
    expect(notice).to_have_text("Amount must be from $1 to $10,000 with at most cents, such as 20.00.")
    assert_in_view(page, notice)
    expect(page.locator("input[name=amount]")).to_have_value(amount)


@pytest.mark.parametrize("width", WIDTHS)
def test_refused_forms_elsewhere_still_say_why_at_the_top(browser: Browser, site: str, width: int) -> None:
    page = sign_in(browser, site, width, f"top-{uuid.uuid4().hex[:8]}@example.com")
    page.fill("input[name=name]", "   ")
    page.click("text=Create app")
    notice = page.locator(".notice.bad")
    expect(notice).to_have_text("Name is required.")
    assert_in_view(page, notice)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_models_page_pages_through_the_list(browser: Browser, site: str, width: int) -> None:
    page = browser.new_context(viewport={"width": width, "height": 844}, base_url=site).new_page()
    page.goto("/models")
    rows = page.locator("#models tr").filter(has=page.locator("td"))
    expect(rows).to_have_count(100)
    expect(page.locator("#model-count")).to_contain_text("models, 1–100 shown.")
    first_model = rows.first.locator("code").inner_text()
    page.click("#next-page")
    expect(page).to_have_url(f"{site}/models?page=2")
    expect(page.locator("#model-count")).to_contain_text("101–200 shown")
    expect(rows.first.locator("code")).not_to_have_text(first_model)
    assert_on_screen(page, page.locator("#previous-page"))
    assert_on_screen(page, page.locator("#next-page"))
    assert_no_sideways_scrolling(page)
    page.click("#previous-page")
    expect(rows.first.locator("code")).to_have_text(first_model)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_long_app_name_without_spaces_never_makes_a_page_scroll_sideways(
    browser: Browser, site: str, api: Api, width: int
) -> None:
    name = "Averyveryverylongappnamewithoutanyspaces" + "x" * 60
    assert len(name) == 100 and " " not in name
    email = f"long-{uuid.uuid4().hex[:8]}@example.com"
    owner = api.sign_in(email)
    app = owner.create_app(name, markup="2", acceptsCustomers=True)
    customer = api.sign_in()
    key = customer.create_key(app["id"])["key"]
    credit(customer.user["id"], "5")
    assert record_call(site, key, {"model": "gpt-4o-mini", "inputTokens": 1000, "outputTokens": 100}) == 201
    page = sign_in(browser, site, width, email)
    width_px = page.evaluate("window.innerWidth")
    for path in ("/dashboard", f"/apps/{app['id']}", "/earnings", f"/earnings?app={app['id']}", "/balance"):
        page.goto(path)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width_px, (path, scroll_width, width_px)
        assert_no_sideways_scrolling(page)
    page.goto("/earnings")
    row = page.locator("#earnings-by-app tr", has_text=name[:20])
    for cell in (row.locator("td").first, row.locator("td.num").nth(0), row.locator("td.num").nth(1)):
        assert_on_screen(page, cell)  # every column on screen, the name wrapped
    page.goto("/dashboard")
    assert_on_screen(page, page.locator("#apps .card", has_text=name[:20]).locator(".pill"))
    page.screenshot(path=SHOTS / f"first-hour-long-name-{width}.png", full_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_demo_apps_calls_came_through_a_key(browser: Browser, site: str, width: int) -> None:
    from local_runner import database

    database.load_demo_data()  # what `make dev` loads; idempotent
    page = sign_in(browser, site, width, database.DEMO_EMAIL)
    page.click("text=Demo chat app")
    expect(page.locator("#keys tr", has_text="Demo key")).to_have_count(1)
    expect(page.locator("#keys-card")).not_to_contain_text("No keys yet")
    expect(page.locator("#transactions tr").filter(has=page.locator("td"))).to_have_count(5)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_customers_dashboard_opens_with_the_app_they_use(browser: Browser, site: str, api: Api, width: int) -> None:
    owner = api.sign_in()
    app = owner.create_app("Tutor bot", acceptsCustomers=True)
    email = f"customer-{uuid.uuid4().hex[:8]}@example.com"
    api.sign_in(email).create_key(app["id"])
    page = sign_in(browser, site, width, email)
    used = page.locator("#apps-used")
    expect(used).to_contain_text("Tutor bot")
    assert_in_view(page, used.locator(".card").first)
    expect(page.locator("main")).not_to_contain_text("No apps yet")
    expect(page.locator("#no-own-apps")).to_have_text("You run no apps of your own yet: create one below.")
    heading = page.locator("h2", has_text="Apps you use").bounding_box()
    mine = page.locator("#no-own-apps").bounding_box()
    assert heading is not None and mine is not None and heading["y"] < mine["y"]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_join_link_has_a_copy_button(browser: Browser, site: str, width: int) -> None:
    page = sign_in(browser, site, width)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    create_app(page, "Shared app")
    page.click("#open-customers")
    link = page.locator("#join-link").inner_text().strip()
    button = page.locator("#copy-join-link")
    assert_on_screen(page, button)
    button.click()
    expect(button).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == link


@pytest.mark.parametrize("width", WIDTHS)
def test_the_sign_in_page_reached_from_a_join_link_names_the_app(
    browser: Browser, site: str, api: Api, width: int
) -> None:
    owner = api.sign_in()
    open_app = owner.create_app("Tutor bot", acceptsCustomers=True)
    closed_app = owner.create_app("Private bot")
    page = browser.new_context(viewport={"width": width, "height": 900}, base_url=site).new_page()
    page.goto(f"/join/{open_app['id']}")
    expect(page.locator("#joining")).to_have_text("Sign in to join Tutor bot.")
    assert_in_view(page, page.locator("#joining"))
    page.goto(f"/join/{closed_app['id']}")  # an app nobody may join keeps its name to itself
    expect(page.locator("h1")).to_have_text("Sign in to Echo Control")
    expect(page.locator("#joining")).to_have_count(0)
    expect(page.locator("main")).not_to_contain_text("Private bot")
