"""Automatic top-up: a card saved through Checkout in setup mode (the mock without a key, the real SDK against the fake
Stripe with one), the settings and their bounds, and the charges a call starts outside its own request path: one at a
time under any concurrency, never past the monthly limit, the same Idempotency-Key on a retry, credited only when
Stripe confirms (paying debt first, refundable), and a decline or a required authentication turning it off."""

import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlparse

import psycopg
import pytest
from conftest import Api, KeyHolder, Session, credit
from fake_stripe import SECRET_KEY, FakeStripe
from test_payouts import post_form

from echo_control import auto_top_up, config, db, payments
from tests.invariants import (
    auto_top_up_mismatches,
    lot_mismatches,
    markup_not_earned,
    statement_mismatches,
    unreconciled_balances,
)

PLATFORM_SECRET = "whsec_platform_test"
ON = {"enabled": True, "threshold": "5.00", "amount": "20.00", "monthlyLimit": "100.00"}


@pytest.fixture(autouse=True)
def reconciled() -> Iterator[None]:
    yield
    assert unreconciled_balances() == []
    assert statement_mismatches() == []
    assert lot_mismatches() == []
    assert markup_not_earned() == []
    assert auto_top_up_mismatches() == []


@pytest.fixture
def webhook(live_server: str) -> str:
    """Our own webhook endpoint over HTTP, where the mocks (and the fake Stripe) deliver their signed events."""
    return f"{live_server}/api/stripe/webhook"


@pytest.fixture
def stripe(monkeypatch: pytest.MonkeyPatch, webhook: str) -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    fake.send_events_to(webhook, PLATFORM_SECRET)
    monkeypatch.setenv("STRIPE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("STRIPE_API_BASE", fake.url)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", PLATFORM_SECRET)
    yield fake
    fake.stop()


def save_mock_card(user: Session, webhook: str, card: str = "succeeds") -> None:
    link = user.call("POST", "/api/stripe/setup-link")
    assert link.status == 201, link.body
    assert auto_top_up.mock_complete_setup(link.body["sessionId"], webhook, card) == 200


def turn_on(user: Session, **numbers: Any) -> dict[str, Any]:
    reply = user.call("PUT", "/api/balance/auto-top-up", {**ON, **numbers})
    assert reply.status == 200, reply.body
    return reply.body


def call(holder: KeyHolder, cost: str) -> Any:
    reply = holder.call(
        "POST", "/api/transactions", {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "cost": cost}
    )
    assert reply.status == 201, reply.body
    return reply.body


def state(user: Session) -> dict[str, Any]:
    reply = user.call("GET", "/api/balance/auto-top-up")
    assert reply.status == 200, reply.body
    return reply.body


def balance(user: Session) -> dict[str, Any]:
    return user.call("GET", "/api/balance").body


def charges_of(user: Session) -> list[dict[str, Any]]:
    return (
        db.connection()
        .execute("SELECT * FROM auto_top_up_charges WHERE user_id = %s ORDER BY sequence", [user.user["id"]])
        .fetchall()
    )


def events_of(user: Session, event_type: str) -> list[dict[str, Any]]:
    return (
        db.connection()
        .execute(
            "SELECT data FROM webhook_events WHERE user_id = %s AND type = %s ORDER BY created_at",
            [user.user["id"], event_type],
        )
        .fetchall()
    )


def funded_holder(user: Session, amount: str = "10") -> KeyHolder:
    app = user.create_app("Auto top-up app")
    credit(user.user["id"], amount)
    return KeyHolder(user, app, user.create_key(app["id"])["key"])


def ready(user: Session, webhook: str, amount: str = "10", card: str = "succeeds", **numbers: Any) -> KeyHolder:
    holder = funded_holder(user, amount)
    save_mock_card(user, webhook, card)
    turn_on(user, **numbers)
    return holder


# --- saving a card ---------------------------------------------------------------------------------------------


def test_without_a_key_the_setup_link_opens_the_mock_page_whose_save_card_saves_a_test_card(
    api: Api, live_server: str
) -> None:
    user = api.sign_in()
    host = urlparse(live_server).netloc
    link = user.call("POST", "/api/stripe/setup-link", headers={"Host": host})
    assert link.status == 201, link.body
    url = urlparse(link.body["url"])
    assert (url.scheme, url.netloc) == ("http", host)
    assert url.path == f"/setup/mock/{link.body['sessionId']}" and parse_qs(url.query) == {"return": ["/balance"]}
    with urllib.request.urlopen(link.body["url"], timeout=10) as page:
        assert "Save card" in page.read().decode()
    assert state(user)["card"] is None
    done = post_form(f"{live_server}{url.path}/complete", live_server, "card=succeeds&return=%2Fbalance")
    assert done.status == 303 and done.headers["Location"] == "/balance?card=saved"
    card = state(user)["card"]
    assert (card["brand"], card["last4"], card["expMonth"]) == ("visa", "4242", 12)
    # one Stripe Customer per user, made once
    again = user.call("POST", "/api/stripe/setup-link")
    customers = db.connection().execute(
        "SELECT stripe_customer_id FROM billing_customers WHERE user_id = %s", [user.user["id"]]
    )
    assert len(customers.fetchall()) == 1 and again.status == 201
    assert api.call("GET", "/setup/mock/cs_mock_setup_unknown").status == 404
    assert api.call("GET", f"/setup/mock/{link.body['sessionId'].replace('cs_mock_setup_', 'cs_test_')}").status == 404


def test_the_mock_setup_page_is_refused_with_a_stripe_key_or_in_the_cloud(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = api.sign_in().call("POST", "/api/stripe/setup-link").body["sessionId"]
    assert api.call("GET", f"/setup/mock/{session_id}").status == 200
    monkeypatch.setenv("STRIPE_SECRET_KEY", SECRET_KEY)
    assert api.call("GET", f"/setup/mock/{session_id}").status == 404
    monkeypatch.delenv("STRIPE_SECRET_KEY")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "echo-CompleteMockSetupFunction")
    completed = api.call(
        "POST",
        f"/setup/mock/{session_id}/complete",
        data="",
        headers={"Origin": "http://localhost", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert completed.status == 404


def test_an_api_key_cannot_save_cards_or_change_auto_top_up(key_holder: KeyHolder) -> None:
    assert key_holder.call("POST", "/api/stripe/setup-link").error_code == "user_session_required"
    assert key_holder.call("PUT", "/api/balance/auto-top-up", ON).error_code == "user_session_required"
    assert key_holder.call("GET", "/api/balance/auto-top-up").error_code == "user_session_required"


# --- settings --------------------------------------------------------------------------------------------------


def test_enabling_without_a_saved_card_is_409_and_stores_nothing(user: Session) -> None:
    reply = user.call("PUT", "/api/balance/auto-top-up", ON)
    assert reply.status == 409 and reply.error_code == "card_required", reply.body
    assert state(user) == {
        "enabled": False,
        "threshold": None,
        "amount": None,
        "monthlyLimit": None,
        "chargedThisMonth": "0.000000",
        "inFlight": None,
        "lastError": None,
        "lastErrorCode": None,
        "lastErrorAt": None,
        "card": None,
        "charges": [],
    }
    # settings may be stored while off, without a card
    off = user.call("PUT", "/api/balance/auto-top-up", {**ON, "enabled": False})
    assert off.status == 200 and off.body["threshold"] == "5.000000" and off.body["enabled"] is False


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({**ON, "amount": "0.99"}, 422),  # below what a payment link buys
        ({**ON, "amount": "10000.01"}, 422),
        ({**ON, "amount": "20.001"}, 422),  # cents at most
        ({**ON, "amount": 20.5}, 200),  # the seed's clients send numbers
        ({**ON, "threshold": "-1"}, 422),
        ({**ON, "threshold": None}, 422),
        ({**ON, "monthlyLimit": "19.99"}, 422),  # a month could not hold one charge
        ({**ON, "monthlyLimit": "abc"}, 422),
        ({**ON, "enabled": "yes"}, 422),
        ({"threshold": "5"}, 422),  # enabled is required
        ({**ON, "userId": str(uuid.uuid4())}, 422),  # unknown fields are refused, not applied
        ({"enabled": True}, 422),  # nothing stored yet: the numbers are needed
    ],
)
def test_bad_settings_are_refused_and_change_nothing(user: Session, webhook: str, body: Any, status: int) -> None:
    save_mock_card(user, webhook)
    before = state(user)
    reply = user.call("PUT", "/api/balance/auto-top-up", body)
    assert reply.status == status, reply.body
    if status != 200:
        assert reply.body["error"]["code"] in ("validation_error", "bad_request"), reply.body
        assert state(user) == before


def test_the_amount_stays_within_what_the_deployment_sells(user: Session, webhook: str, monkeypatch) -> None:
    save_mock_card(user, webhook)
    monkeypatch.setenv("ECHO_MAX_PAYMENT_USD", "50")
    refused = user.call("PUT", "/api/balance/auto-top-up", {**ON, "amount": "50.01"})
    assert refused.status == 422 and refused.body["error"]["details"]["max"] == "50", refused.body
    assert turn_on(user, amount="50.00")["amount"] == "50.000000"


def test_an_omitted_number_keeps_what_is_stored(user: Session, webhook: str) -> None:
    save_mock_card(user, webhook)
    turn_on(user)
    off = user.call("PUT", "/api/balance/auto-top-up", {"enabled": False})
    assert off.status == 200, off.body
    assert (off.body["enabled"], off.body["threshold"], off.body["amount"]) == (False, "5.000000", "20.000000")
    on = user.call("PUT", "/api/balance/auto-top-up", {"enabled": True, "amount": "30"}).body
    assert (on["enabled"], on["amount"], on["monthlyLimit"]) == (True, "30.000000", "100.000000")
    assert user.call("PUT", "/api/balance/auto-top-up", {"enabled": True, "monthlyLimit": "29"}).status == 422


# --- the whole loop without a key ------------------------------------------------------------------------------


def test_a_call_below_the_threshold_starts_one_charge_outside_its_path_credited_when_confirmed(
    api: Api, user: Session, webhook: str
) -> None:
    holder = ready(user, webhook)
    call(holder, "3")  # 7 left: above the threshold
    assert charges_of(user) == []
    recorded = call(holder, "3")  # 4 left: below 5
    assert recorded["shortfall"] == "0.000000"
    [charge] = charges_of(user)
    assert (charge["status"], charge["amount"], charge["sequence"], charge["payment_id"]) == (
        "requested",
        Decimal(20),
        1,
        None,  # nothing was sent, nor a payment made, by the call itself
    )
    assert state(user)["inFlight"]["status"] == "requested"
    assert balance(user)["balance"] == "4.000000"

    assert auto_top_up.charge_due(webhook) == {"sent": 1}
    assert balance(user)["balance"] == "24.000000"
    now = state(user)
    assert now["chargedThisMonth"] == "20.000000" and now["inFlight"] is None and now["enabled"] is True
    assert [(c["amount"], c["status"]) for c in now["charges"]] == [("20.000000", "succeeded")]
    [payment] = user.call("GET", "/api/payments").body["payments"]
    assert (payment["amount"], payment["status"]) == (2000, "completed")
    assert payment["stripePaymentId"] == auto_top_up.MOCK_INTENT_PREFIX + uuid.UUID(str(charge["id"])).hex[:24]
    assert [lot["source"] for lot in balance(user)["lots"]] == ["adjustment", "payment"]
    assert [e["data"]["amount"] for e in events_of(user, "payment.succeeded")] == ["20.00"]
    # the worker finds nothing more to do, and a confirmation delivered again credits nothing
    assert auto_top_up.charge_due(webhook) == {}
    assert balance(user)["balance"] == "24.000000"


def test_a_call_that_leaves_debt_is_topped_up_and_the_top_up_pays_the_debt_first(user: Session, webhook: str) -> None:
    holder = ready(user, webhook, amount="2", threshold="0")
    recorded = call(holder, "5")
    assert recorded["shortfall"] == "3.000000"
    assert (balance(user)["balance"], balance(user)["debt"]) == ("-3.000000", "3.000000")
    assert auto_top_up.charge_due(webhook) == {"sent": 1}
    after = balance(user)
    assert (after["balance"], after["debt"]) == ("17.000000", "0.000000")
    [lot] = after["lots"]
    assert (lot["source"], lot["remaining"]) == ("payment", "17.000000")  # 3 of its 20 paid the debt


def test_two_calls_crossing_the_threshold_together_start_one_charge(user: Session, webhook: str) -> None:
    for round_number in range(5):
        other = Api.sign_in(user.api) if round_number else user
        holder = ready(other, webhook, amount="6")
        start = threading.Barrier(2)

        def cross(_: int, holder: KeyHolder = holder, start: threading.Barrier = start) -> None:
            start.wait()
            call(holder, "1.5")

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(cross, range(2)))
        assert [c["status"] for c in charges_of(other)] == ["requested"]
        assert balance(other)["balance"] == "3.000000"


def test_a_storm_of_concurrent_calls_never_has_two_charges_in_flight(user: Session, webhook: str) -> None:
    """32 calls on 8 threads while the local worker sends and confirms charges as they come: each charge starts only
    after the one before it settled, and the month's total stays within the limit."""
    holder = ready(user, webhook, amount="21", threshold="20", monthlyLimit="60")
    worker = auto_top_up.start_local(webhook)
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: call(holder, "1"), range(32)))
        deadline = time.monotonic() + 10
        while any(c["status"] in auto_top_up.IN_FLIGHT for c in charges_of(user)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop.set()  # type: ignore[attr-defined]
        worker.join(10)
    charges = charges_of(user)
    assert 1 <= len(charges) <= 3 and all(c["status"] == "succeeded" for c in charges)
    for before, after in itertools.pairwise(charges):
        assert after["created_at"] >= before["updated_at"], "a charge started while another was in flight"
    assert sum(c["amount"] for c in charges) <= 60
    assert Decimal(balance(user)["balance"]) == 21 - 32 + 20 * len(charges)


def test_the_monthly_limit_counts_what_was_charged_and_what_is_in_flight(user: Session, webhook: str) -> None:
    holder = ready(user, webhook, amount="6", threshold="5", monthlyLimit="40")
    call(holder, "2")  # 4 left
    assert len(charges_of(user)) == 1  # in flight: 20 of 40
    call(holder, "1")
    assert len(charges_of(user)) == 1  # never two in flight
    auto_top_up.charge_due(webhook)  # 23 left
    call(holder, "19")  # 4 left: 20 more makes 40, within the limit
    auto_top_up.charge_due(webhook)  # 24 left
    call(holder, "20")  # 4 left: a third would pass 40
    assert [c["status"] for c in charges_of(user)] == ["succeeded", "succeeded"]
    assert state(user)["chargedThisMonth"] == "40.000000"
    # a new UTC month: the limit holds again from nothing
    db.connection().execute(
        "UPDATE auto_top_up_charges SET month = (month - interval '1 month')::date WHERE user_id = %s",
        [user.user["id"]],
    )
    assert state(user)["chargedThisMonth"] == "0.000000"
    call(holder, "1")
    assert [c["status"] for c in charges_of(user)] == ["succeeded", "succeeded", "requested"]
    auto_top_up.charge_due(webhook)
    # a lower limit: a charge that would pass it is not made
    turn_on(user, amount="20", monthlyLimit="25")
    call(holder, "20")
    assert len(charges_of(user)) == 3


def test_holds_and_admin_debits_start_a_charge_too_refunds_do_not(
    api: Api, user: Session, admin: Session, webhook: str
) -> None:
    holder = ready(user, webhook, amount="10")
    held = holder.call("POST", "/api/holds", {"amount": "6"})
    assert held.status == 201, held.body
    assert len(charges_of(user)) == 1  # 4 available
    auto_top_up.charge_due(webhook)
    debit = admin.call(
        "POST",
        "/api/balance",
        {"userId": user.user["id"], "amount": "21", "reason": "test debit", "operation": "decrement"},
    )
    assert debit.status in (200, 201), debit.body
    assert [c["status"] for c in charges_of(user)] == ["succeeded", "requested"]
    auto_top_up.charge_due(webhook)
    # refunding a top-up takes its credits back and charges nothing
    payment = next(p for p in user.call("GET", "/api/payments").body["payments"] if p["status"] == "completed")
    refund = {"object": "charge", "amount_refunded": 2000, "payment_intent": payment["stripePaymentId"]}
    assert payments.send_signed_event(webhook, "charge.refunded", refund) == 200
    assert Decimal(balance(user)["available"]) < 5
    assert len(charges_of(user)) == 2
    refunded = next(p for p in user.call("GET", "/api/payments").body["payments"] if p["id"] == payment["id"])
    assert (refunded["status"], refunded["amountRefunded"]) == ("refunded", 2000)


def test_a_dispute_of_a_top_up_acts_as_on_any_payment_and_turns_auto_top_up_off(user: Session, webhook: str) -> None:
    holder = ready(user, webhook)
    call(holder, "6")
    auto_top_up.charge_due(webhook)
    call(holder, "10")  # 14 left: 10 of the top-up spent
    [payment] = user.call("GET", "/api/payments").body["payments"]
    dispute = {"object": "dispute", "amount": 2000, "payment_intent": payment["stripePaymentId"]}
    assert payments.send_signed_event(webhook, "charge.dispute.created", dispute) == 200
    after = balance(user)
    assert (after["balance"], after["debt"]) == ("-6.000000", "6.000000")  # what was spent of it is owed
    now = state(user)
    assert now["enabled"] is False and now["lastErrorCode"] == "payment_disputed"
    assert len(charges_of(user)) == 1  # the dispute charged nothing


def test_turning_it_off_cancels_a_charge_not_yet_sent(user: Session, webhook: str) -> None:
    holder = ready(user, webhook)
    call(holder, "6")
    user.call("PUT", "/api/balance/auto-top-up", {"enabled": False})
    [charge] = charges_of(user)
    assert (charge["status"], charge["error_code"]) == ("failed", "cancelled")
    assert auto_top_up.charge_due(webhook) == {}
    assert balance(user)["balance"] == "4.000000"
    assert events_of(user, "auto_top_up.failed") == []


@pytest.mark.parametrize(("card", "code"), [("declines", "card_declined"), ("authentication", "requires_action")])
def test_a_mock_decline_or_required_authentication_turns_it_off_and_says_why(
    user: Session, webhook: str, card: str, code: str
) -> None:
    holder = ready(user, webhook, card=card)
    call(holder, "6")
    assert auto_top_up.charge_due(webhook) == {"failed": 1}
    now = state(user)
    assert now["enabled"] is False and now["lastErrorCode"] == code and now["lastError"]
    assert [(c["status"], c["errorCode"]) for c in now["charges"]] == [("failed", code)]
    assert balance(user)["balance"] == "4.000000"
    [payment] = user.call("GET", "/api/payments").body["payments"]
    assert payment["status"] == "failed"
    [event] = events_of(user, "auto_top_up.failed")
    assert (event["data"]["code"], event["data"]["amount"], event["data"]["paymentId"]) == (
        code,
        "20.00",
        payment["id"],
    )
    call(holder, "1")  # off: nothing more
    assert len(charges_of(user)) == 1
    # on again (with a good card): the error is forgotten and the next call tops up
    save_mock_card(user, webhook)
    assert turn_on(user)["lastError"] is None
    call(holder, "1")
    assert auto_top_up.charge_due(webhook) == {"sent": 1}
    assert balance(user)["balance"] == "22.000000"


# --- the metering path -----------------------------------------------------------------------------------------


def test_a_call_that_starts_a_charge_sends_the_same_statements_as_one_that_does_not(
    user: Session, webhook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crossing is found by a trigger inside the debit's own statement: no more statements (round trips) and no
    call to Stripe on the metering path."""
    holder = ready(user, webhook)
    sent: list[str] = []
    original = psycopg.Cursor.execute

    def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is threading.main_thread():  # the in-process gateway's request
            sent.append(str(query)[:60])
        return original(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counted)
    call(holder, "1")  # 9 left (a first call of the key fills what the functions cache)
    sent.clear()
    call(holder, "1")  # 8 left: no charge
    quiet = list(sent)
    sent.clear()
    call(holder, "5")  # 3 left: a charge requested
    crossing = list(sent)
    assert len(charges_of(user)) == 1
    assert len(quiet) == 2 and crossing == quiet  # the authorizer's key lookup and the debit, nothing else


# --- the local runner and the cloud's worker -------------------------------------------------------------------


def test_the_local_runners_worker_charges_as_soon_as_the_call_commits(user: Session, webhook: str) -> None:
    holder = ready(user, webhook)
    worker = auto_top_up.start_local(webhook)
    try:
        time.sleep(0.5)  # listening
        started = time.monotonic()
        call(holder, "6")
        while balance(user)["balance"] != "24.000000" and time.monotonic() - started < 5:
            time.sleep(0.05)
        assert balance(user)["balance"] == "24.000000"
    finally:
        worker.stop.set()  # type: ignore[attr-defined]
        worker.join(10)
    assert not worker.is_alive()


def test_the_scheduled_worker_counts_charges_in_flight_for_too_long(user: Session, webhook: str, monkeypatch) -> None:
    holder = ready(user, webhook)
    call(holder, "6")
    db.connection().execute(
        "UPDATE auto_top_up_charges SET created_at = now() - interval '20 minutes', next_attempt_at = now() + "
        "interval '1 hour' WHERE user_id = %s",
        [user.user["id"]],
    )
    result = auto_top_up.run_scheduled()
    assert result["waiting"] >= 1 and result["sent"] == 0


# --- with a Stripe key: the real SDK against the fake Stripe ---------------------------------------------------


def stripe_card(user: Session, stripe: FakeStripe, card: str = "pm_card_visa") -> str:
    link = user.call("POST", "/api/stripe/setup-link")
    assert link.status == 201, link.body
    assert link.body["url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    stripe.complete_setup(link.body["sessionId"], card)
    return str(link.body["sessionId"])


def test_with_stripe_a_setup_session_saves_the_card_and_a_call_charges_it_off_session(
    user: Session, stripe: FakeStripe, webhook: str
) -> None:
    holder = funded_holder(user)
    session_id = stripe_card(user, stripe)
    [created] = stripe.posts("/v1/customers")
    assert created["idempotency_key"] == f"customer-{user.user['id']}"
    assert created["form"]["email"] == user.user["email"]
    [session] = stripe.posts("/v1/checkout/sessions")
    form = session["form"]
    assert (form["mode"], form["customer"], form["payment_method_types[0]"]) == ("setup", created_id(stripe), "card")
    assert form["success_url"] == "http://localhost/balance?card=saved"
    assert [e["status"] for e in stripe.events_sent] == [200, 200]  # session completed, setup intent succeeded
    card = state(user)["card"]
    assert (card["brand"], card["last4"]) == ("visa", "4242")
    assert db.card_setup(session_id)["completed_at"] is not None
    stripe_card(user, stripe)  # a second link reuses the customer
    assert len(stripe.posts("/v1/customers")) == 1

    turn_on(user)
    call(holder, "6")
    assert stripe.posts("/v1/payment_intents") == []  # the call itself never called Stripe
    assert auto_top_up.charge_due() == {"sent": 1}
    [charge] = stripe.posts("/v1/payment_intents")
    assert charge["idempotency_key"] == f"auto-top-up-{user.user['id']}-1"
    form = charge["form"]
    assert (form["amount"], form["currency"], form["off_session"], form["confirm"]) == ("2000", "usd", "true", "true")
    assert form["customer"] == created_id(stripe) and form["payment_method"].startswith("pm_card_visa_")
    stripe.wait_for_events()
    assert balance(user)["balance"] == "24.000000"
    assert state(user)["chargedThisMonth"] == "20.000000"
    [payment] = user.call("GET", "/api/payments").body["payments"]
    assert payment["status"] == "completed" and payment["stripePaymentId"] in stripe.payment_intents


def test_concurrent_first_setup_links_make_one_stripe_customer(user: Session, stripe: FakeStripe) -> None:
    with ThreadPoolExecutor(4) as pool:
        links = list(pool.map(lambda _: user.call("POST", "/api/stripe/setup-link"), range(4)))
    assert [link.status for link in links] == [201] * 4
    assert len(stripe.customers) == 1  # Stripe answered every first click with the first's customer
    stored = db.connection().execute(
        "SELECT stripe_customer_id FROM billing_customers WHERE user_id = %s", [user.user["id"]]
    )
    assert [row["stripe_customer_id"] for row in stored.fetchall()] == list(stripe.customers)
    assert {s["form"]["customer"] for s in stripe.posts("/v1/checkout/sessions")} == set(stripe.customers)


def created_id(stripe: FakeStripe) -> str:
    [customer] = stripe.customers
    return customer


def test_a_retry_after_a_lost_answer_charges_once(user: Session, stripe: FakeStripe) -> None:
    holder = funded_holder(user)
    stripe_card(user, stripe)
    turn_on(user)
    call(holder, "6")
    stripe.intent_mode, stripe.hold_events = "lose", True  # Stripe makes the charge; its answers never come back
    assert auto_top_up.charge_due() == {"later": 1}
    assert len(stripe.payment_intents) == 1
    [charge] = charges_of(user)
    assert charge["status"] == "requested" and charge["attempts"] == 1
    stripe.intent_mode = "ok"
    db.connection().execute("UPDATE auto_top_up_charges SET next_attempt_at = now() WHERE id = %s", [charge["id"]])
    assert auto_top_up.charge_due() == {"sent": 1}
    assert charges_of(user)[0]["status"] == "processing"  # Stripe took it; its confirmation credits it
    assert balance(user)["balance"] == "4.000000"
    stripe.release_events()
    keys = [r["idempotency_key"] for r in stripe.posts("/v1/payment_intents")]
    assert set(keys) == {f"auto-top-up-{user.user['id']}-1"} and len(keys) >= 2  # the SDK's retries and ours
    assert len(stripe.payment_intents) == 1  # one charge, however many times it was asked for
    assert balance(user)["balance"] == "24.000000"
    assert charges_of(user)[0]["status"] == "succeeded"
    assert len(user.call("GET", "/api/payments").body["payments"]) == 1


def test_a_lost_answer_whose_confirmation_arrives_needs_no_retry(user: Session, stripe: FakeStripe) -> None:
    holder = funded_holder(user)
    stripe_card(user, stripe)
    turn_on(user)
    call(holder, "6")
    stripe.intent_mode = "lose"
    assert auto_top_up.charge_due() == {"later": 1}
    stripe.wait_for_events()  # payment_intent.succeeded: Stripe made it
    assert charges_of(user)[0]["status"] == "succeeded"
    assert balance(user)["balance"] == "24.000000"
    assert auto_top_up.charge_due() == {}  # nothing left to send


@pytest.mark.parametrize(
    ("card", "code"),
    [
        ("pm_card_chargeDeclined", "card_declined"),
        ("pm_card_authenticationRequired", "requires_action"),  # Stripe's 402 authentication_required off-session
        ("pm_card_requiresAction", "requires_action"),  # a payment intent left requiring action
    ],
)
def test_with_stripe_a_decline_or_required_authentication_turns_it_off_once(
    user: Session, stripe: FakeStripe, card: str, code: str
) -> None:
    holder = funded_holder(user)
    stripe_card(user, stripe, card)
    turn_on(user)
    call(holder, "6")
    assert auto_top_up.charge_due() == {"failed": 1}
    stripe.wait_for_events()  # payment_intent.payment_failed comes too, and changes nothing more
    now = state(user)
    assert now["enabled"] is False and now["lastErrorCode"] == code and now["lastError"], now
    assert len(events_of(user, "auto_top_up.failed")) == 1
    assert balance(user)["balance"] == "4.000000"
    assert [p["status"] for p in user.call("GET", "/api/payments").body["payments"]] == ["failed"]


def test_a_failure_reported_only_by_stripes_event_turns_it_off(user: Session, stripe: FakeStripe, webhook: str) -> None:
    holder = funded_holder(user)
    stripe_card(user, stripe)
    turn_on(user)
    call(holder, "6")
    [charge] = db.lease_due_charges(10)
    payment_id = db.attach_payment(charge["id"])
    failed = {
        "id": "pi_fake_async",
        "object": "payment_intent",
        "status": "requires_payment_method",
        "metadata": {"paymentId": str(payment_id)},
        "last_payment_error": {"code": "authentication_required", "message": "Authenticate"},
    }
    signature_secret = config.stripe_credentials().webhook_secret
    assert payments.send_signed_event(webhook, "payment_intent.payment_failed", failed, secret=signature_secret) == 200
    now = state(user)
    assert (now["enabled"], now["lastErrorCode"]) == (False, "requires_action")
    assert [c["status"] for c in now["charges"]] == ["failed"]


def test_charge_bodies_are_signed_events_only(api: Api, user: Session) -> None:
    """An unsigned payment_intent.succeeded credits nothing."""
    event = {"id": "evt_x", "type": "payment_intent.succeeded", "data": {"object": {"metadata": {}}}}
    reply = api.call("POST", "/api/stripe/webhook", data=json.dumps(event), headers={"Stripe-Signature": "t=1,v1=00"})
    assert reply.status == 400
