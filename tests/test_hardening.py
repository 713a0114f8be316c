"""Findings of a security pass, each closed: deep JSON, dates past the calendar, webhook payloads and timestamps,
the local runner's Host, an API key's view of the statement, -0, Connect events' accounts, transfer events naming
two payouts."""

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

import pytest
from conftest import Api, KeyHolder, Session, credit
from fake_stripe import SECRET_KEY, FakeStripe

from echo_control import config, payments
from tests.test_payouts import CONNECT_SECRET, earnings, onboard, owner_earning, payout, send_event

DEEP = ("[" * 3000 + "]" * 3000).encode()
DEEP_IN_OBJECT = ('{"model": "gpt-4o", "metadata": ' + "[" * 3000 + "]" * 3000 + "}").encode()


# --- JSON nested thousands deep ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "credential"),
    [
        ("/api/transactions", "key"),
        ("/api/holds", "key"),
        ("/api/echo-apps", "user"),
        ("/api/balance", "user"),
        ("/api/payouts", "user"),
        ("/api/validate-api-key", None),  # before any authentication
        ("/api/dev/session", None),
    ],
)
def test_json_nested_3000_deep_is_400_invalid_json(key_holder: KeyHolder, path: str, credential: str | None) -> None:
    token = {"key": key_holder.key, "user": key_holder.session.token, None: None}[credential]
    for body in (DEEP, DEEP_IN_OBJECT):
        reply = key_holder.session.api.call(
            "POST", path, token, data=body, headers={"Content-Type": "application/json"}
        )
        assert (reply.status, reply.error_code) == (400, "invalid_json"), reply.body


def test_json_64_deep_is_still_json_and_brackets_in_strings_do_not_count(key_holder: KeyHolder) -> None:
    from echo_control import http

    assert not http.too_deep("[" * 64 + "]" * 64)
    assert http.too_deep("[" * 65 + "]" * 65)
    assert not http.too_deep(json.dumps({"name": "[" * 500, "x": '\\"[[[['}))
    credit(key_holder.session.user["id"], "1")
    call = {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "metadata": {"note": "{" * 200}}
    assert key_holder.call("POST", "/api/transactions", call).status == 201


# --- dates past what can be a day ---------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["to=9999-12-31", "from=0001-01-01", "to=9999-12-31T23:59:59Z", "from=1969-12-31"])
@pytest.mark.parametrize(
    "path", ["/api/transactions", "/api/transactions/export", "/api/echo-apps/APP/usage", "/api/echo-apps/APP/earnings"]
)
def test_a_date_outside_1970_to_9998_is_422(user: Session, path: str, query: str) -> None:
    app = user.create_app("Dated")
    reply = user.call("GET", f"{path.replace('APP', app['id'])}?{query}")
    assert (reply.status, reply.error_code) == (422, "validation_error"), reply.body


def test_the_last_and_first_days_allowed_answer(user: Session) -> None:
    app = user.create_app("Dated")
    assert user.call("GET", "/api/transactions?from=1970-01-01&to=9998-12-31").status == 200
    assert user.call("GET", f"/api/echo-apps/{app['id']}/usage?from=9998-01-01&to=9998-12-31").status == 200
    assert user.call("GET", f"/api/echo-apps/{app['id']}/earnings?from=1970-01-01&to=1970-12-31").status == 200


def test_a_key_expiring_in_the_year_9999_is_422(user: Session) -> None:
    app = user.create_app("Keys")
    reply = user.call("POST", "/api/api-keys", {"echoAppId": app["id"], "expiresAt": "9999-12-31T23:59:59Z"})
    assert reply.status == 422, reply.body


# --- webhooks ---------------------------------------------------------------------------------------------


def deliver(api: Api, payload: str, timestamp: int | None = None, secret: str = config.DEV_WEBHOOK_SECRET) -> Any:
    signature = payments.sign_payload(payload, secret, timestamp=timestamp)
    return api.call("POST", "/api/stripe/webhook", data=payload, headers={"Stripe-Signature": signature})


@pytest.mark.parametrize("payload", ["[]", '"x"', "7", "null", "[" * 3000 + "]" * 3000])
def test_a_correctly_signed_payload_that_is_not_an_object_is_400(api: Api, payload: str) -> None:
    reply = deliver(api, payload)
    assert (reply.status, reply.error_code) == (400, "invalid_payload"), reply.body


def test_a_signature_timestamped_more_than_5_minutes_ahead_is_refused(user: Session) -> None:
    link = user.call("POST", "/api/stripe/payment-link", {"amount": "20"}).body
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "checkout.session.completed",
        "data": {
            "object": {
                "id": link["sessionId"],
                "object": "checkout.session",
                "payment_status": "paid",
                "amount_total": 2000,
                "currency": "usd",
                "metadata": {"paymentId": link["paymentId"]},
            }
        },
    }
    payload = json.dumps(event)
    ahead = deliver(user.api, payload, timestamp=int(time.time()) + 4000)
    assert (ahead.status, ahead.error_code) == (400, "invalid_signature")
    assert user.call("GET", "/api/balance").body["balance"] == "0.000000"
    assert deliver(user.api, payload, timestamp=int(time.time()) + 60).status == 200  # clocks drift a little
    assert user.call("GET", "/api/balance").body["balance"] == "20.000000"


@pytest.fixture
def stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    monkeypatch.setenv("STRIPE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("STRIPE_API_BASE", fake.url)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_platform_test")
    monkeypatch.setenv("STRIPE_CONNECT_WEBHOOK_SECRET", CONNECT_SECRET)
    yield fake
    fake.stop()


def connect_event(account: str, about: dict[str, Any]) -> str:
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "account.updated",
        "account": account,
        "data": {"object": about},
    }
    return json.dumps(event)


def test_a_connect_event_applies_only_to_the_account_it_came_from(api: Api, stripe: FakeStripe) -> None:
    victim = api.sign_in()
    account = victim.call("POST", "/api/payouts/account").body["accountId"]
    enable = {"id": account, "object": "account", "payouts_enabled": True}
    other = deliver(api, connect_event("acct_someone_else", enable), secret=CONNECT_SECRET)
    assert other.status == 200 and other.body["applied"] is False
    assert earnings(victim)["payoutsEnabled"] is False
    missing = deliver(
        api, json.dumps({**json.loads(connect_event(account, enable)), "account": None}), secret=CONNECT_SECRET
    )
    assert missing.body["applied"] is False
    own = deliver(api, connect_event(account, enable), secret=CONNECT_SECRET)
    assert own.body["applied"] is True and earnings(victim)["payoutsEnabled"] is True


def test_a_reversal_naming_one_payout_with_anothers_transfer_moves_neither(api: Api, stripe: FakeStripe) -> None:
    first, second = owner_earning(api, "25"), owner_earning(api, "25")
    for owner in (first, second):
        onboard(api, owner)
    paid_first, paid_second = payout(first, "10").body, payout(second, "10").body
    assert paid_first["status"] == paid_second["status"] == "paid"
    reversal = {
        "id": paid_second["stripeTransferId"],
        "object": "transfer",
        "amount": 1000,
        "amount_reversed": 1000,
        "metadata": {"payoutId": paid_first["id"]},
    }
    assert send_event(api, "transfer.reversed", reversal, "whsec_platform_test")["applied"] is False
    assert earnings(first)["available"] == earnings(second)["available"] == "15.000000"
    honest = {**reversal, "metadata": {"payoutId": paid_second["id"]}}
    assert send_event(api, "transfer.reversed", honest, "whsec_platform_test")["applied"] is True
    assert earnings(second)["available"] == "25.000000" and earnings(first)["available"] == "15.000000"


# --- the local runner's Host -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/me", "/sign-in", "/api/stripe/payment-link", "/api/openapi.json"])
def test_another_host_is_400_invalid_host(user: Session, path: str) -> None:
    reply = user.call("GET", path, headers={"Host": "attacker.example"})
    assert (reply.status, reply.error_code) == (400, "invalid_host")
    posted = user.call("POST", "/api/stripe/payment-link", {"amount": "5"}, headers={"Host": "attacker.example:3000"})
    assert (posted.status, posted.error_code) == (400, "invalid_host")
    assert user.call("GET", "/api/payments").body["payments"] == []


@pytest.mark.parametrize("host", ["localhost", "localhost:3000", "127.0.0.1:8080", "[::1]:3000", "LOCALHOST:1"])
def test_the_runners_own_hosts_answer_on_any_port(user: Session, host: str) -> None:
    assert user.call("GET", "/api/me", headers={"Host": host}).status == 200


def test_echo_allowed_hosts_adds_names(user: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    assert user.call("GET", "/api/me", headers={"Host": "devbox.internal:3000"}).status == 400
    monkeypatch.setenv("ECHO_ALLOWED_HOSTS", "devbox.internal, other.test")
    assert user.call("GET", "/api/me", headers={"Host": "devbox.internal:3000"}).status == 200
    assert user.call("GET", "/api/me", headers={"Host": "other.test"}).status == 200
    assert user.call("GET", "/api/me", headers={"Host": "third.test"}).status == 400


class _Trap(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self) -> None:
        _Trap.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_the_mock_checkout_posts_its_webhook_to_the_runner_never_to_the_host_header(live_server: str) -> None:
    trap = ThreadingHTTPServer(("127.0.0.1", 0), _Trap)
    threading.Thread(target=trap.serve_forever, daemon=True).start()
    elsewhere = f"127.0.0.1:{trap.server_port}"  # an allowed name, another port: another service on this machine
    try:

        def http(method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Any:
            request = urllib.request.Request(live_server + path, data=body, headers=headers or {}, method=method)
            try:
                return urllib.request.build_opener(_NoRedirect).open(request, timeout=10)
            except urllib.error.HTTPError as answer:
                return answer

        signed = json.loads(
            http(
                "POST", "/api/dev/session", b'{"email": "ssrf@example.com"}', {"Content-Type": "application/json"}
            ).read()
        )
        auth = {"Authorization": f"Bearer {signed['token']}", "Content-Type": "application/json"}
        link = json.loads(http("POST", "/api/stripe/payment-link", b'{"amount": "5"}', auth).read())
        path = urlparse(link["url"]).path
        paid = http("POST", path + "/pay", b"", {"Host": elsewhere, "Origin": f"http://{elsewhere}"})
        assert paid.status == 303
        assert _Trap.hits == []
        balance = json.loads(http("GET", "/api/balance", headers=auth).read())
        assert balance["balance"] == "5.000000"  # the webhook reached the runner itself
    finally:
        trap.shutdown()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# --- an API key and the statement -----------------------------------------------------------------------------


def test_an_api_key_cannot_read_the_users_statement(api: Api, user: Session, admin: Session) -> None:
    app_x, app_y = user.create_app("X"), user.create_app("Y")
    key_x, key_y = user.create_key(app_x["id"])["key"], user.create_key(app_y["id"])["key"]
    admin.call("POST", "/api/balance", {"userId": user.user["id"], "amount": "5", "reason": "private note"})
    call = {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "cost": "0.01"}
    assert api.call("POST", "/api/transactions", key_y, call).status == 201
    for query in ("", "?format=csv"):
        reply = api.call("GET", f"/api/ledger{query}", key_x)
        assert (reply.status, reply.error_code) == (403, "user_session_required")
        assert "private note" not in json.dumps(reply.body)
    assert len(user.call("GET", "/api/ledger").body["entries"]) == 2  # the user still reads it all


# --- -0 -------------------------------------------------------------------------------------------------------


def test_a_cost_of_minus_zero_answers_zero(api: Api, key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "1")
    body = b'{"model": "gpt-4o", "inputTokens": 0, "outputTokens": 0, "cost": -0.0}'
    reply = api.call(
        "POST", "/api/transactions", key_holder.key, data=body, headers={"Content-Type": "application/json"}
    )
    assert reply.status == 201, reply.body
    assert reply.body["cost"] == reply.body["providerCost"] == reply.body["transaction"]["cost"] == "0.000000"


def test_minus_zero_parses_to_zero_in_every_amount() -> None:
    from decimal import Decimal

    from echo_control.http import json_body
    from echo_control.models import BalanceAdjust, TransactionCreate

    assert str(json_body('{"a": -0.0}')["a"]) == "0.0"
    call = TransactionCreate.model_validate(
        {"model": "m", "inputTokens": 0, "outputTokens": 0, "cost": Decimal("-0.0")}
    )
    assert format(call.cost, "f") == "0.000000"
    adjust = BalanceAdjust.model_validate({"userId": "u", "amount": "-0.000", "reason": "r"})
    assert not adjust.amount.is_signed()
