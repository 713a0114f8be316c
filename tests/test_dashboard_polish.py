"""The dashboard's rough edges, each checked in a real Chromium at a desktop (1280 px) and a phone (390 px) width:
elements are asserted on screen (bounding boxes inside the viewport, not clipped by a scrolling box)."""

import itertools
import json
import re
import urllib.error
import urllib.request
import uuid

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from test_dashboard import SHOTS, record_call

pytestmark = pytest.mark.browser
WIDTHS = [1280, 390]


@pytest.fixture
def site(live_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ECHO_PUBLIC_URL", live_server)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_server


def open_page(browser: Browser, site: str, width: int, *, javascript: bool = True) -> Page:
    context = browser.new_context(
        viewport={"width": width, "height": 844}, base_url=site, java_script_enabled=javascript
    )
    return context.new_page()


def sign_in(browser: Browser, site: str, width: int, email: str | None = None, *, javascript: bool = True) -> Page:
    page = open_page(browser, site, width, javascript=javascript)
    page.goto("/sign-in")
    page.fill("input[name=email]", email or f"polish-{uuid.uuid4().hex[:8]}@example.com")
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{site}/dashboard")
    return page


def create_app(page: Page, name: str = "Polished app") -> str:
    page.goto("/dashboard")
    page.fill("input[name=name]", name)
    page.click("text=Create app")
    expect(page.locator("h1")).to_have_text(name)
    return page.url


def create_key(page: Page, name: str = "") -> str:
    if name:
        page.fill("#keys-card input[name=name]", name)
    page.click("#create-key")
    return page.locator("#new-key-value").inner_text().strip()


def assert_on_screen(page: Page, element: Locator) -> None:
    """Visible, inside the viewport's width, and not cut off by a scrolling or clipping ancestor."""
    expect(element).to_be_visible()
    box = element.bounding_box()
    width = page.viewport_size["width"] if page.viewport_size else 0
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (box, width)
    clipped = element.evaluate(
        """el => {
            const mine = el.getBoundingClientRect();
            for (let box = el.parentElement; box; box = box.parentElement) {
                if (getComputedStyle(box).overflowX === 'visible') continue;
                const edge = box.getBoundingClientRect();
                if (mine.left < edge.left - 0.5 || mine.right > edge.right + 0.5) return box.outerHTML.slice(0, 80);
            }
            return null;
        }"""
    )
    assert clipped is None, f"clipped by {clipped}"


def assert_no_sideways_scrolling(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("window.innerWidth")
    for wrap in page.locator(".table-wrap").all():
        assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth"), wrap.inner_html()[:120]


@pytest.mark.parametrize("width", WIDTHS)
def test_form_errors_show_inside_the_page_in_words(browser: Browser, site: str, width: int) -> None:
    from conftest import ADMIN_EMAIL

    page = sign_in(browser, site, width)
    page.fill("input[name=name]", "   ")  # passes the browser's `required`, not the server's
    page.click("text=Create app")
    expect(page).to_have_url(f"{site}/dashboard#notice")
    notice = page.locator(".notice.bad")
    expect(notice).to_have_text("Name is required.")
    assert_on_screen(page, notice)
    assert_on_screen(page, page.locator("nav >> text=Apps"))
    expect(page.locator("#apps")).to_contain_text("No apps yet")
    page.screenshot(path=SHOTS / f"form-error-{width}.png", full_page=True)
    page.reload()  # the message was for that one submission
    expect(page.locator(".notice")).to_have_count(0)

    admin = sign_in(browser, site, width, ADMIN_EMAIL)
    admin.goto("/balance")
    admin.fill("#admin-adjust input[name=email]", f"nobody-{uuid.uuid4().hex[:8]}@example.com")
    admin.fill("#admin-adjust input[name=amount]", "1")
    admin.fill("#admin-adjust input[name=reason]", "Test")
    admin.click("#admin-adjust button")
    expect(admin).to_have_url(f"{site}/balance#notice")
    expect(admin.locator(".notice.bad")).to_have_text("No user has that email")
    expect(admin.locator("#admin-adjust input[name=reason]")).to_have_value("Test")  # filled in again
    expect(admin.locator("#amount")).to_have_value("10")  # the buy form is another form: left as it was
    assert_on_screen(admin, admin.locator("nav >> text=Balance"))


@pytest.mark.parametrize("width", WIDTHS)
def test_unknown_addresses_get_the_404_page(browser: Browser, site: str, width: int) -> None:
    page = sign_in(browser, site, width)
    response = page.goto("/no/such/page")
    assert response is not None and response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    expect(page.locator("h1")).to_have_text("There is no page at this address")
    assert_on_screen(page, page.locator("nav >> text=Apps"))
    assert_on_screen(page, page.locator("text=Back to your apps"))
    page.screenshot(path=SHOTS / f"not-found-{width}.png", full_page=True)

    with pytest.raises(urllib.error.HTTPError) as api_missing:  # the API keeps its JSON answer
        urllib.request.urlopen(f"{site}/api/no-such-route")
    assert api_missing.value.code == 404
    assert json.load(api_missing.value)["error"]["code"] == "not_found"


@pytest.mark.parametrize("width", WIDTHS)
def test_reloading_after_creating_a_key_creates_no_other_key(browser: Browser, site: str, width: int) -> None:
    page = sign_in(browser, site, width)
    app_url = create_app(page)
    key = create_key(page, "laptop")
    assert key.startswith("echo_")
    expect(page).to_have_url(app_url)  # post/redirect/get: the key is in no URL
    assert_on_screen(page, page.locator("#copy-key"))
    flash = [c for c in page.context.cookies() if c["name"] == "echo_flash"]
    assert flash == []  # read once and cleared by the page that showed it
    page.reload()
    expect(page.locator("#new-key")).to_have_count(0)
    expect(page.locator("#keys tr")).to_have_count(2)  # header + the one key
    page.go_back()
    page.go_forward()
    expect(page.locator("#keys tr")).to_have_count(2)
    assert key not in page.content()


def test_the_new_key_travels_in_an_http_only_cookie_that_holds_no_key(browser: Browser, site: str) -> None:
    page = sign_in(browser, site, 1280)
    app_url = create_app(page)
    seen: list[dict] = []
    page.on("response", lambda r: seen.append({"url": r.url, "headers": r.all_headers()}))
    create_key(page)
    key = page.locator("#new-key-value").inner_text().strip()
    post = next(r for r in seen if r["url"].endswith("/keys"))
    cookie = post["headers"]["set-cookie"]
    assert cookie.startswith("echo_flash=") and "HttpOnly" in cookie and "Max-Age=300" in cookie
    assert key not in cookie and key[5:] not in cookie
    assert post["headers"]["location"] == app_url.removeprefix(site)


@pytest.mark.parametrize("width", WIDTHS)
def test_revoking_asks_for_confirmation_without_javascript(browser: Browser, site: str, width: int) -> None:
    page = sign_in(browser, site, width, javascript=False)
    create_app(page, "An app with a rather long name for its keys table")
    for name in ("production server with a long descriptive name", "staging-" + "x" * 92):
        page.fill("input[name=name]", name)
        page.click("#create-key")
    revoke = page.locator("#keys details.confirm summary").first
    assert_on_screen(page, revoke)
    assert_no_sideways_scrolling(page)
    page.screenshot(path=SHOTS / f"keys-{width}.png", full_page=True)
    revoke.click()
    confirm = page.locator("#keys >> text=Yes, revoke").first
    assert_on_screen(page, confirm)
    expect(page.locator("#keys .pill.bad >> visible=true")).to_have_count(0)  # the first click revokes nothing
    page.screenshot(path=SHOTS / f"revoke-confirm-{width}.png", full_page=True)
    confirm.click()
    expect(page.locator(".notice.ok")).to_contain_text("is revoked")
    expect(page.locator("#keys .pill.bad >> visible=true")).to_have_count(1)
    expect(page.locator("#keys .pill.ok >> visible=true")).to_have_count(1)


def spend_some(browser: Browser, site: str, width: int) -> tuple[Page, str]:
    """A signed-in page with $10 bought and three calls metered on a new app's key."""
    page = sign_in(browser, site, width)
    app_url = create_app(page)
    key = create_key(page)
    page.fill("#amount", "10")
    page.click("#buy")
    page.click("#pay")
    for body in (
        {"model": "gpt-4o", "inputTokens": 1200, "outputTokens": 300, "cost": "0.123456"},
        {"model": "claude-3-5-sonnet-with-a-long-model-name", "inputTokens": 10, "outputTokens": 5, "cost": "0.5"},
        {"model": "gpt-4o-mini", "inputTokens": 100, "outputTokens": 20, "cost": "0.000360"},
    ):
        assert record_call(site, key, body) == 201
    page.goto(app_url)
    return page, app_url


@pytest.mark.parametrize("width", WIDTHS)
def test_the_spend_chart_has_a_readable_y_axis(browser: Browser, site: str, width: int) -> None:
    page, _ = spend_some(browser, site, width)
    labels = page.locator("#chart-y-axis span")
    texts = labels.all_inner_texts()
    assert len(texts) >= 3 and texts[0] == "$0.00"
    values = [float(t.removeprefix("$")) for t in texts]
    assert values == sorted(values) and values[-1] >= 0.623816  # the top tick covers the day's spend
    for label in labels.all():
        assert_on_screen(page, label)
        assert float(label.evaluate("el => parseFloat(getComputedStyle(el).fontSize)")) >= 12
    boxes = [label.bounding_box() for label in labels.all()]
    tops = [box["y"] for box in boxes if box]
    assert all(lower - upper >= 12 for lower, upper in itertools.pairwise(tops)), tops  # bottom up, no overlap
    for axis_label in page.locator(".x-axis span").all():
        assert_on_screen(page, axis_label)
    expect(page.locator("#chart-summary")).to_contain_text("$0.6238")
    assert_on_screen(page, page.locator("#usage-chart"))
    page.locator("#usage-chart-box").screenshot(path=SHOTS / f"chart-{width}.png")


@pytest.mark.parametrize("width", WIDTHS)
def test_tables_keep_cost_and_revoke_on_screen(browser: Browser, site: str, width: int) -> None:
    page, _ = spend_some(browser, site, width)
    assert_no_sideways_scrolling(page)
    for table in ("#transactions", "#usage-by-model"):
        for cost in page.locator(f"{table} tr td:last-child").all():
            assert_on_screen(page, cost)
    assert_on_screen(page, page.locator("#keys details.confirm summary").first)
    page.screenshot(path=SHOTS / f"app-{width}.png", full_page=True)
    page.goto("/balance")
    assert_no_sideways_scrolling(page)
    for amount in page.locator("#spend tr td:last-child, #payments tr td:nth-child(2)").all():
        assert_on_screen(page, amount)
    page.screenshot(path=SHOTS / f"balance-{width}.png", full_page=True)


def test_money_has_one_precision_per_context(browser: Browser, site: str) -> None:
    page, _ = spend_some(browser, site, 1280)
    costs = page.locator("#transactions tr td:last-child").all_inner_texts()
    assert costs == ["$0.00036", "$0.50", "$0.1235"]  # newest first; below $1 to 4 significant digits
    page.goto("/balance")
    # 10 - 0.623816 = 9.376184: a balance is shown in cents, rounded half-up
    expect(page.locator("#balance")).to_have_text("$9.38")
    for text in page.locator(".stat").all_inner_texts():  # cents from $1, significant digits below
        assert re.fullmatch(r"\$[\d,]+\.\d\d|\$0\.\d{2,6}", text), text
    expect(page.locator("#payments td.num").first).to_have_text("$10.00")
    page.goto("/dashboard")
    expect(page.locator("#balance")).to_have_text("$9.38")
    expect(page.locator("#apps")).to_contain_text("$0.6238")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_demo_welcome_credit_says_what_it_is(browser: Browser, site: str, width: int) -> None:
    from local_runner import database

    database.load_demo_data()  # what `make dev` loads; idempotent
    page = sign_in(browser, site, width, database.DEMO_EMAIL)
    expect(page.locator("#balance-summary")).to_contain_text("Paid $0.00 · credited $25.00 · spent")
    page.goto("/balance")
    credit = page.locator("#adjustments tr", has_text="Welcome credit")
    expect(credit).to_have_count(1)
    expect(credit).to_contain_text("+$25.00")
    assert_on_screen(page, credit.locator("td.num"))
    page.screenshot(path=SHOTS / f"demo-balance-{width}.png", full_page=True)
    page.goto("/dashboard")
    page.click("text=Demo chat app")
    expect(page.locator("#chart-y-axis span").first).to_have_text("$0.00")
    page.screenshot(path=SHOTS / f"demo-app-{width}.png", full_page=True)
