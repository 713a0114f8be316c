"""The dashboard's server side without a browser: one-time flashes, form errors in words, money on pages,
the chart's axis, and the 404 answer for unknown addresses."""

import re
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from echo_control import pages
from echo_control.models import ApiKeyCreate, ApiKeyUpdate, BalanceAdjust, EchoAppCreate, PaymentLinkIn

FORM = {"Origin": "http://localhost", "Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def api(gateway: Any) -> Any:
    """Like conftest's, but every request carries exactly the cookies the test names (no cookie jar)."""
    from conftest import Api
    from werkzeug.test import Client

    plain = Api(gateway)
    plain.client = Client(gateway, use_cookies=False)
    return plain


def cookies_of(reply: Any) -> dict[str, str]:
    found = {}
    for header in reply.headers.getlist("Set-Cookie"):
        name, _, rest = header.partition("=")
        found[name] = rest.split(";", 1)[0]
    return found


def page(api: Any, path: str, **cookies: str) -> Any:
    return api.call("GET", path, headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})


def test_a_new_key_is_shown_once_and_stored_only_encrypted(api: Any, user: Any, database_url: str) -> None:
    import psycopg

    app = user.create_app("Flash app")
    posted = api.call(
        "POST",
        f"/apps/{app['id']}/keys",
        data="name=laptop",
        headers={**FORM, "Host": "localhost", "Cookie": f"echo_session={user.token}"},
    )
    assert posted.status == 303 and posted.headers["Location"] == f"/apps/{app['id']}"
    flash = cookies_of(posted)["echo_flash"]
    flash_id = uuid.UUID(hex=flash.split(".")[0])
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT ciphertext FROM page_flashes WHERE id = %s", [flash_id]).fetchone()
    assert row is not None
    stored = bytes(row[0])

    shown = page(api, f"/apps/{app['id']}", echo_session=user.token, echo_flash=flash)
    key = re.search(r'id="new-key-value">(echo_\w+)<', shown.body)
    assert key, "the new key is on the page"
    assert key.group(1).encode() not in stored and key.group(1) not in flash
    assert cookies_of(shown)["echo_flash"] == ""  # cleared
    assert len(user.call("GET", "/api/api-keys").body["apiKeys"]) == 1

    again = page(api, f"/apps/{app['id']}", echo_session=user.token, echo_flash=flash)
    assert again.status == 200 and key.group(1) not in again.body and 'id="new-key"' not in again.body


@pytest.mark.parametrize(
    "cookie",
    ["garbage", "not-hex.AAAA", f"{uuid.uuid4().hex}.AAAA", "", f"{uuid.uuid4().hex}.{'A' * 43}"],
)
def test_a_flash_cookie_we_did_not_write_shows_nothing(api: Any, user: Any, cookie: str) -> None:
    reply = page(api, "/dashboard", echo_session=user.token, echo_flash=cookie)
    assert reply.status == 200 and 'class="notice' not in reply.body


def test_a_flash_read_with_the_wrong_key_is_not_shown(api: Any, user: Any) -> None:
    app = user.create_app("Tampered")
    posted = api.call(
        "POST",
        f"/apps/{app['id']}/keys",
        data="",
        headers={**FORM, "Host": "localhost", "Cookie": f"echo_session={user.token}"},
    )
    flash_id, _ = cookies_of(posted)["echo_flash"].split(".")
    forged = f"{flash_id}.{'B' * 43}"
    reply = page(api, f"/apps/{app['id']}", echo_session=user.token, echo_flash=forged)
    assert reply.status == 200 and 'id="new-key"' not in reply.body


@pytest.mark.parametrize(
    ("model", "fields", "message"),
    [
        (EchoAppCreate, {}, "Name is required."),
        (EchoAppCreate, {"name": "x" * 101}, "Name can be at most 100 characters."),
        (
            EchoAppCreate,
            {"name": "ok", "markup": "0.5"},
            "Markup must be from 1 to 100 with at most 4 decimal places, such as 1.25.",
        ),
        (PaymentLinkIn, {"amount": "abc"}, "Amount must be from $1 to $10,000 with at most cents, such as 20.00."),
        (PaymentLinkIn, {"amount": "10.001"}, "Amount must be from $1 to $10,000 with at most cents, such as 20.00."),
        (PaymentLinkIn, {"amount": "0.5"}, "Amount must be from $1 to $10,000 with at most cents, such as 20.00."),
        (PaymentLinkIn, {"amount": "20000"}, "Amount must be from $1 to $10,000 with at most cents, such as 20.00."),
        (ApiKeyUpdate, {"spendLimit": "-3"}, "Spend limit must be from $0 to $1,000,000, such as 50.00."),
        (
            BalanceAdjust,
            {"userId": "u", "amount": "1", "reason": "ok", "operation": "steal"},
            "Credit or debit: please choose one of the options.",
        ),
        (
            ApiKeyCreate,
            {"echoAppId": "a", "name": "bad\x07name"},
            "Name must have a visible character and no control characters.",
        ),
    ],
)
def test_form_problems_read_as_sentences(model: Any, fields: dict, message: str) -> None:
    with pytest.raises(pages.Unprocessable) as refused:
        pages.parse_form(model, fields)
    assert refused.value.message == message


def test_form_errors_go_back_to_the_form_with_the_message(api: Any, user: Any) -> None:
    posted = api.call(
        "POST",
        "/dashboard/apps",
        data="name=+++",
        headers={**FORM, "Host": "localhost", "Cookie": f"echo_session={user.token}"},
    )
    assert posted.status == 303 and posted.headers["Location"] == "/dashboard#notice"
    shown = page(api, "/dashboard", echo_session=user.token, echo_flash=cookies_of(posted)["echo_flash"])
    assert '<div class="notice bad" role="status"' in shown.body and "Name is required." in shown.body
    assert "<nav>" in shown.body
    # a cross-site post stays a refusal, not a message
    forged = api.call(
        "POST",
        "/dashboard/apps",
        data="name=x",
        headers={**FORM, "Origin": "https://evil.example", "Host": "localhost", "Cookie": f"echo_session={user.token}"},
    )
    assert forged.status == 403 and "echo_flash" not in cookies_of(forged)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0", "$0.00"),
        ("0.000360", "$0.00036"),  # below $1: up to 4 significant digits, no trailing zeros
        ("0.019875", "$0.01988"),
        ("0.005", "$0.005"),
        ("0.5", "$0.50"),  # but always the cents
        ("0.9999996", "$1.00"),
        ("2.675", "$2.68"),  # $1 and above: cents, half-up, not float's banker's rounding (float(2.675) is 2.67499…)
        ("79.50036", "$79.50"),  # never metering noise on a card
        ("1234567.5", "$1,234,567.50"),
        ("-3.005", "-$3.01"),
        ("-0.00040", "-$0.0004"),
        ("9.999999", "$10.00"),
    ],
)
def test_money_on_pages_follows_one_rule(value: str, shown: str) -> None:
    assert pages.usd(Decimal(value)) == shown
    assert pages.usd(None) == "–"


def test_payments_in_cents_show_as_dollars() -> None:
    cents = pages._environment().filters["cents"]
    assert cents(1999) == "$19.99" and cents(100000000) == "$1,000,000.00"


class Day:
    def __init__(self, day: date, cost: Decimal) -> None:
        self.day, self.cost = day, cost


@given(
    st.lists(st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(100000), places=6), min_size=1, max_size=30)
)
def test_the_chart_axis_covers_the_busiest_day_in_a_few_round_steps(costs: list[Decimal]) -> None:
    until = date(2026, 11, 24)
    since = until - timedelta(days=29)
    chart = pages.day_bars([Day(since + timedelta(days=i), c) for i, c in enumerate(costs)], since, until)
    values = [tick["value"] for tick in chart["ticks"]]
    assert values[0] == 0 and values[-1] >= max(costs)
    assert 2 <= len(values) <= 11
    assert all(bar["h"] <= chart["height"] + 0.01 for bar in chart["bars"])
    step = values[1]
    assert step.normalize().as_tuple().digits[0] in (1, 2, 5)
    labels = [tick["label"] for tick in chart["ticks"]]  # one precision for the whole axis: $0.000 beside $0.002
    assert len({label.partition(".")[2].__len__() for label in labels}) == 1, labels


def test_unknown_addresses_are_404_pages_and_the_api_keeps_json(api: Any, user: Any) -> None:
    signed_in = page(api, "/settings/profile", echo_session=user.token)
    assert signed_in.status == 404 and signed_in.headers["Content-Type"].startswith("text/html")
    assert "There is no page at this address" in signed_in.body and "<nav>" in signed_in.body
    anonymous = api.call("POST", "/nowhere", data="x=1")
    assert anonymous.status == 404 and "<nav>" not in anonymous.body
    missing = api.call("GET", "/api/no-such-route")
    assert missing.status == 404 and missing.body["error"]["code"] == "not_found"
    assert api.call("PATCH", "/api/echo-apps").status == 405  # a declared path keeps its 405


def test_out_of_bounds_addresses_are_error_pages_not_json(api: Any, user: Any) -> None:
    for path in (f"/apps/{'a' * 65}", f"/dashboard?payment={'x' * 21}", f"/sign-in?next={'/' * 2001}"):
        reply = page(api, path, echo_session=user.token)
        assert reply.status == 400 and reply.headers["Content-Type"].startswith("text/html"), path
        assert "This address is not valid" in reply.body
    assert "<nav>" in page(api, f"/apps/{'a' * 65}", echo_session=user.token).body


def test_the_flash_cookie_is_secure_over_https(api: Any, user: Any) -> None:
    app = user.create_app("Over HTTPS")
    headers = {**FORM, "Host": "localhost", "Cookie": f"echo_session={user.token}", "X-Forwarded-Proto": "https"}
    posted = api.call("POST", f"/apps/{app['id']}/keys", data="", headers=headers)
    assert "; Secure" in posted.headers["Set-Cookie"]
    plain = api.call("POST", f"/apps/{app['id']}/keys", data="", headers={**headers, "X-Forwarded-Proto": "http"})
    assert "Secure" not in plain.headers["Set-Cookie"]


def test_a_refused_form_comes_back_filled_in(api: Any, user: Any) -> None:
    headers = {**FORM, "Host": "localhost", "Cookie": f"echo_session={user.token}"}
    posted = api.call("POST", "/dashboard/apps", data="name=Kept+name&description=" + "d" * 1001, headers=headers)
    shown = page(api, "/dashboard", echo_session=user.token, echo_flash=cookies_of(posted)["echo_flash"])
    assert "Description can be at most 1000 characters." in shown.body
    assert 'value="Kept name"' in shown.body
    assert user.call("GET", "/api/echo-apps").body["echoApps"] == []  # and nothing was created
