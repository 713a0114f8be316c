"""Stripe: payment links through the real SDK (against a fake Stripe on loopback), signed webhooks, exactly once."""

import base64
import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import Api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from echo_control import config, payments
from tests.invariants import unreconciled_balances

SECRET = config.DEV_WEBHOOK_SECRET


@pytest.fixture(autouse=True)
def reconciled() -> Iterator[None]:
    yield
    assert unreconciled_balances() == []


def completed_event(payment_id: str, user_id: str, session_id: str, amount: int, **extra: Any) -> dict:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": extra.pop("type", "checkout.session.completed"),
        "created": int(time.time()),
        "data": {
            "object": {
                "id": session_id,
                "object": "checkout.session",
                "payment_status": "paid",
                "amount_total": amount,
                "currency": "usd",
                "client_reference_id": user_id,
                "metadata": {"paymentId": payment_id, "userId": user_id},
                "payment_intent": extra.pop("payment_intent", f"pi_{payment_id[:8]}"),
                **extra,
            }
        },
    }


def refund_event(payment_id: str, user_id: str, total_refunded: int, intent: str) -> dict:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "charge.refunded",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": f"ch_{uuid.uuid4().hex[:10]}",
                "object": "charge",
                "amount_refunded": total_refunded,
                "payment_intent": intent,
                "metadata": {"paymentId": payment_id, "userId": user_id},
            }
        },
    }


def deliver(
    api: Api,
    event: dict | str,
    *,
    signature: str | None = None,
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    payload = body if body is not None else (event if isinstance(event, str) else json.dumps(event))
    sig = signature if signature is not None else payments.sign_payload(payload, SECRET)
    return api.call(
        "POST",
        "/api/stripe/webhook",
        data=payload,
        headers={"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": sig, **(headers or {})},
    )


@pytest.fixture
def pending(user) -> dict:
    """A pending $20 payment made through a (mock) payment link."""
    reply = user.call("POST", "/api/stripe/payment-link", {"amount": "20"})
    assert reply.status == 201, reply.body
    return {**reply.body, "userId": user.user["id"], "session": user}


def balance(session) -> Decimal:
    return Decimal(session.call("GET", "/api/balance").body["balance"])


# --- payment links -----------------------------------------------------------------------------------


def test_without_a_stripe_key_the_link_opens_the_mock_checkout(user) -> None:
    reply = user.call("POST", "/api/stripe/payment-link", {"amount": "12.50"})
    assert reply.status == 201
    assert reply.body["sessionId"].startswith("cs_mock_")
    # on the origin the request came in on (the test client's Host is localhost)
    assert reply.body["url"] == f"http://localhost/checkout/mock/{reply.body['sessionId']}?return=%2Fbalance"
    listed = user.call("GET", "/api/payments").body["payments"]
    assert [(p["id"], p["amount"], p["status"]) for p in listed] == [(reply.body["paymentId"], 1250, "pending")]


@pytest.mark.parametrize("amount", ["0.99", "0", "-5", "10000.01", "1.001", "NaN", "abc", None])
def test_payment_amounts_are_bounded(user, amount) -> None:
    reply = user.call("POST", "/api/stripe/payment-link", {"amount": amount})
    assert reply.status == 422, reply.body
    assert user.call("GET", "/api/payments").body["payments"] == []


def test_another_users_app_cannot_be_named_on_a_payment(user, other_user) -> None:
    app = user.create_app()
    assert other_user.call("POST", "/api/stripe/payment-link", {"amount": "5", "echoAppId": app["id"]}).status == 404


@pytest.fixture
def fake_stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict]]:
    """A loopback server answering the Checkout Sessions API as Stripe does; records each request."""
    requests: list[dict] = []

    class FakeStripe(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            requests.append(
                {"path": self.path, "form": {k: v[0] for k, v in form.items()}, "headers": dict(self.headers.items())}
            )
            session_id = f"cs_test_{uuid.uuid4().hex}"
            body = json.dumps(
                {
                    "id": session_id,
                    "object": "checkout.session",
                    "url": f"https://checkout.stripe.com/c/pay/{session_id}",
                    "client_reference_id": form["client_reference_id"][0],
                    "metadata": {"paymentId": form["metadata[paymentId]"][0]},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Request-Id", "req_fake")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeStripe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_fake")
    monkeypatch.setenv("STRIPE_API_BASE", f"http://127.0.0.1:{server.server_port}")
    yield requests
    server.shutdown()


def test_with_a_stripe_key_the_sdk_creates_a_checkout_session(user, fake_stripe) -> None:
    reply = user.call("POST", "/api/stripe/payment-link", {"amount": "25.00"})
    assert reply.status == 201, reply.body
    assert reply.body["url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    [sent] = fake_stripe
    assert sent["path"] == "/v1/checkout/sessions"
    assert sent["headers"]["Authorization"] == "Bearer sk_test_fake"
    assert sent["headers"]["Idempotency-Key"] == f"payment-link-{reply.body['paymentId']}"
    form = sent["form"]
    assert form["client_reference_id"] == user.user["id"]
    assert form["metadata[paymentId]"] == reply.body["paymentId"]
    assert form["line_items[0][price_data][unit_amount]"] == "2500"
    assert form["mode"] == "payment"
    # and the mock checkout does not exist when Stripe is configured
    assert user.call("GET", f"/checkout/mock/cs_mock_{uuid.uuid4().hex}").status == 404


# --- webhook signatures ------------------------------------------------------------------------------


def test_a_payload_with_one_byte_changed_is_refused(api, pending) -> None:
    event = completed_event(pending["paymentId"], pending["userId"], pending["sessionId"], 2000)
    payload = json.dumps(event)
    signature = payments.sign_payload(payload, SECRET)
    tampered = payload.replace('"amount_total": 2000', '"amount_total": 9000')
    assert tampered != payload
    reply = deliver(api, event, signature=signature, body=tampered)
    assert reply.status == 400 and reply.error_code == "invalid_signature"
    assert balance(pending["session"]) == 0


def test_a_timestamp_older_than_the_tolerance_is_refused(api, pending) -> None:
    event = completed_event(pending["paymentId"], pending["userId"], pending["sessionId"], 2000)
    payload = json.dumps(event)
    old = payments.sign_payload(payload, SECRET, timestamp=int(time.time()) - 301)
    assert deliver(api, event, signature=old, body=payload).status == 400
    assert deliver(api, event, signature="", body=payload).status == 400
    assert deliver(api, event, signature=payments.sign_payload(payload, "whsec_wrong"), body=payload).status == 400
    assert balance(pending["session"]) == 0


def test_two_v1_signatures_where_one_is_valid_are_accepted(api, pending) -> None:
    event = completed_event(pending["paymentId"], pending["userId"], pending["sessionId"], 2000)
    payload = json.dumps(event)
    valid = payments.sign_payload(payload, SECRET)
    t, v1 = valid.split(",")
    header = f"{t},v1={'0' * 64},{v1}"
    assert deliver(api, event, signature=header, body=payload).status == 200
    assert balance(pending["session"]) == Decimal("20")


def test_base64_bodies_and_lower_case_headers_from_api_gateway(api, pending) -> None:
    from local_runner.lambdas import LambdaContext, load_handler
    from local_runner.template import ROOT

    event = completed_event(pending["paymentId"], pending["userId"], pending["sessionId"], 2000)
    payload = json.dumps(event)
    proxy = json.loads((ROOT / "events" / "stripe_webhook.json").read_text())
    proxy["headers"] = {"stripe-signature": payments.sign_payload(payload, SECRET), "content-type": "application/json"}
    proxy["multiValueHeaders"] = {k: [v] for k, v in proxy["headers"].items()}
    proxy["body"] = base64.b64encode(payload.encode()).decode()
    proxy["isBase64Encoded"] = True
    result = load_handler(ROOT / "functions" / "stripe_webhook")(proxy, LambdaContext("StripeWebhookFunction"))
    assert result["statusCode"] == 200, result["body"]
    assert balance(pending["session"]) == Decimal("20")


# --- exactly once ------------------------------------------------------------------------------------


def test_the_same_event_five_times_in_a_row_credits_once(api, pending) -> None:
    event = completed_event(pending["paymentId"], pending["userId"], pending["sessionId"], 2000)
    replies = [deliver(api, event) for _ in range(5)]
    assert [r.status for r in replies] == [200] * 5
    assert [r.body["applied"] for r in replies] == [True, False, False, False, False]
    assert balance(pending["session"]) == Decimal("20")
    paid = pending["session"].call("GET", "/api/balance").body
    assert paid["totalPaid"] == "20.000000"
    [payment] = pending["session"].call("GET", "/api/payments").body["payments"]
    assert payment["status"] == "completed" and payment["stripePaymentId"].startswith("pi_")


def test_the_same_event_20_times_concurrently_credits_once(api, pending) -> None:
    event = completed_event(pending["paymentId"], pending["userId"], pending["sessionId"], 2000)
    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(lambda _: deliver(Api(api.client.application), event), range(20)))
    assert {r.status for r in replies} == {200}
    assert sum(r.body["applied"] for r in replies) == 1
    assert balance(pending["session"]) == Decimal("20")


def test_different_events_describing_one_payment_credit_once(api, pending) -> None:
    args = (pending["paymentId"], pending["userId"], pending["sessionId"], 2000)
    deliver(api, completed_event(*args))
    deliver(api, completed_event(*args, type="checkout.session.async_payment_succeeded"))
    assert balance(pending["session"]) == Decimal("20")


def test_unpaid_completion_waits_for_async_success(api, pending) -> None:
    args = (pending["paymentId"], pending["userId"], pending["sessionId"], 2000)
    deliver(api, completed_event(*args, payment_status="unpaid"))
    assert balance(pending["session"]) == 0
    deliver(api, completed_event(*args, type="checkout.session.async_payment_succeeded"))
    assert balance(pending["session"]) == Decimal("20")


@pytest.mark.parametrize("order", ["completed-first", "refund-first"])
def test_completed_and_partially_refunded_in_either_order(api, pending, order) -> None:
    intent = f"pi_{uuid.uuid4().hex[:12]}"
    completed = completed_event(
        pending["paymentId"], pending["userId"], pending["sessionId"], 2000, payment_intent=intent
    )
    refunds = [refund_event(pending["paymentId"], pending["userId"], total, intent) for total in (500, 800)]
    sequence = [completed, *refunds] if order == "completed-first" else [*refunds, completed]
    for event in sequence:
        assert deliver(api, event).status == 200
    for event in sequence:  # every redelivery changes nothing
        assert deliver(api, event).body["applied"] is False
    assert balance(pending["session"]) == Decimal("12")
    [payment] = pending["session"].call("GET", "/api/payments").body["payments"]
    assert payment["status"] == "refunded" and payment["amountRefunded"] == 800
    totals = pending["session"].call("GET", "/api/balance").body
    assert totals["totalPaid"] == "12.000000"


def test_a_refund_never_takes_the_balance_below_zero(api, pending, key_holder) -> None:
    intent = f"pi_{uuid.uuid4().hex[:12]}"
    deliver(
        api, completed_event(pending["paymentId"], pending["userId"], pending["sessionId"], 2000, payment_intent=intent)
    )
    # spend most of it
    app = pending["session"].create_app()
    key = pending["session"].create_key(app["id"])["key"]
    assert (
        api.call(
            "POST", "/api/transactions", key, {"model": "x", "inputTokens": 1, "outputTokens": 1, "cost": "15"}
        ).status
        == 201
    )
    deliver(api, refund_event(pending["paymentId"], pending["userId"], 2000, intent))
    assert balance(pending["session"]) == Decimal("0")


def test_failure_events_mark_the_payment_failed(api, pending) -> None:
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "payment_intent.payment_failed",
        "data": {
            "object": {"id": "pi_failed", "object": "payment_intent", "metadata": {"paymentId": pending["paymentId"]}}
        },
    }
    assert deliver(api, event).status == 200
    [payment] = pending["session"].call("GET", "/api/payments").body["payments"]
    assert payment["status"] == "failed"
    assert balance(pending["session"]) == 0


def test_unknown_event_types_are_acknowledged_and_change_nothing(api, pending) -> None:
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "customer.created",
        "data": {"object": {"id": "cus_1", "object": "customer"}},
    }
    reply = deliver(api, event)
    assert reply.status == 200 and reply.body == {"received": True, "applied": False}
    assert balance(pending["session"]) == 0


def test_a_signed_payload_that_is_not_an_event_is_400(api) -> None:
    assert deliver(api, "not json at all").status == 400


# --- the whole local flow over HTTP ------------------------------------------------------------------


def test_payment_link_to_mock_checkout_to_webhook_to_balance_over_http(live_server, monkeypatch) -> None:
    monkeypatch.setenv("ECHO_PUBLIC_URL", live_server)

    def http(method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, str, Any]:
        request = urllib.request.Request(live_server + path, data=body, headers=headers or {}, method=method)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(request) as response:
                return response.status, response.read().decode(), response.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), exc.headers

    status, text, _ = http(
        "POST",
        "/api/dev/session",
        json.dumps({"email": f"buyer-{uuid.uuid4().hex[:6]}@example.com"}).encode(),
        {"Content-Type": "application/json"},
    )
    token = json.loads(text)["token"]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    status, text, _ = http("POST", "/api/stripe/payment-link", json.dumps({"amount": "15"}).encode(), auth)
    assert status == 201
    url = json.loads(text)["url"]
    assert url.startswith(live_server + "/checkout/mock/")
    path = urllib.parse.urlparse(url).path
    status, page, _ = http("GET", path)
    assert status == 200 and "Pay $15.00" in page
    status, _, headers = http("POST", path + "/pay", b"", {"Origin": live_server})
    assert status == 303 and headers["Location"] == "/balance?payment=success"  # the default return path
    status, text, _ = http("GET", "/api/balance", headers=auth)
    assert json.loads(text)["balance"] == "15.000000"
    status, text, _ = http("GET", "/api/payments", headers=auth)
    assert json.loads(text)["payments"][0]["status"] == "completed"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_a_deployment_may_cap_payments_below_the_contracts_ceiling(user, monkeypatch) -> None:
    monkeypatch.setenv("ECHO_MAX_PAYMENT_USD", "500")
    refused = user.call("POST", "/api/stripe/payment-link", {"amount": "500.01"})
    assert refused.status == 422, refused.body
    assert refused.body["error"]["details"]["max"] == "500"
    assert user.call("POST", "/api/stripe/payment-link", {"amount": "500.00"}).status == 201


# --- odd but signed events ---------------------------------------------------------------------------


def test_a_signed_event_whose_metadata_is_not_an_object_is_acknowledged_not_a_500(api: Api, pending) -> None:
    for metadata in (["paymentId", pending["paymentId"]], "a string", 7, None):
        event = completed_event(pending["paymentId"], pending["userId"], pending["sessionId"], 2000)
        event["data"]["object"]["metadata"] = metadata
        reply = deliver(api, event)
        assert reply.status == 200, reply.body
    # the session id still finds the payment: the first delivery credited it, once
    assert balance(pending["session"]) == Decimal("20")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    event_type=st.sampled_from(sorted(payments.HANDLED_EVENTS)),
    data=st.one_of(JSON_VALUES, st.fixed_dictionaries({"object": JSON_VALUES})),
    field=st.sampled_from(["metadata", "amount_refunded", "amount_total", "payment_intent", "id", "object"]),
    value=JSON_VALUES,
)
def test_no_shape_of_a_signed_event_gives_a_5xx(api: Api, event_type: str, data: Any, field: str, value: Any) -> None:
    if isinstance(data, dict) and isinstance(data.get("object"), dict):
        data["object"][field] = value
    event = {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": event_type, "data": data}
    reply = deliver(api, event)
    assert reply.status < 500, reply.body


def test_a_total_below_the_stored_amount_credits_what_was_collected_and_is_logged(api: Api, pending, caplog) -> None:
    event = completed_event(pending["paymentId"], pending["userId"], pending["sessionId"], 1999)
    with caplog.at_level("WARNING"):
        assert deliver(api, event).status == 200
    assert any("differs from the payment's amount" in r.getMessage() for r in caplog.records)
    assert balance(pending["session"]) == Decimal("19.99")  # what Stripe collected, not what was asked


def test_a_total_above_the_stored_amount_credits_no_more_than_was_asked(api: Api, pending) -> None:
    event = completed_event(pending["paymentId"], pending["userId"], pending["sessionId"], 2500)
    assert deliver(api, event).status == 200
    assert balance(pending["session"]) == Decimal("20")


def test_an_expired_checkout_session_expires_its_pending_payment(api: Api, pending) -> None:
    event = completed_event(pending["paymentId"], pending["userId"], pending["sessionId"], 2000)
    event["type"] = "checkout.session.expired"
    event["data"]["object"].update(status="expired", payment_status="unpaid")
    assert deliver(api, event).status == 200
    listed = pending["session"].call("GET", "/api/payments").body["payments"]
    assert [p["status"] for p in listed if p["id"] == pending["paymentId"]] == ["expired"]
    assert balance(pending["session"]) == Decimal("0")
