"""Money only leaves if it came in: the three ways money leaked (each found from outside), refunds and disputes
reversing exactly what they should, and the whole-database invariants after each test. Stripe events are signed
and verified by the real stripe SDK; payouts go through the real SDK to the fake Stripe on loopback."""

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ADMIN_EMAIL, Api, Session
from fake_stripe import SECRET_KEY, FakeStripe

from echo_control import config, payments
from tests.invariants import (
    cash_unbacked_earnings,
    held_mismatches,
    lot_mismatches,
    markup_not_earned,
    statement_mismatches,
    unreconciled_balances,
    unreconciled_earnings,
)
from tests.test_payments import completed_event, deliver
from tests.test_payouts import CONNECT_SECRET, PLATFORM_SECRET, onboard
from tests.test_webhooks import events_of

CALL = {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 5}


@pytest.fixture(autouse=True)
def whole_database_reconciles() -> Iterator[None]:
    yield
    assert unreconciled_balances() == []
    assert lot_mismatches() == []
    assert held_mismatches() == []
    assert statement_mismatches() == []
    assert markup_not_earned() == []
    assert cash_unbacked_earnings() == []
    assert unreconciled_earnings() == []


@pytest.fixture
def stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Call it to switch to the fake Stripe (Connect payouts) after paying through the mock checkout."""
    fake = FakeStripe().start()

    def switch() -> FakeStripe:
        monkeypatch.setenv("STRIPE_SECRET_KEY", SECRET_KEY)
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", PLATFORM_SECRET)
        monkeypatch.setenv("STRIPE_CONNECT_WEBHOOK_SECRET", CONNECT_SECRET)
        return fake

    yield switch
    fake.stop()


def pay(api: Api, session: Session, dollars: int) -> tuple[str, str]:
    """A card payment of `dollars`, completed by Stripe's signed webhook; (payment id, payment intent)."""
    link = session.call("POST", "/api/stripe/payment-link", {"amount": str(dollars)}).body
    intent = f"pi_{uuid.uuid4().hex}"
    event = completed_event(link["paymentId"], session.user["id"], link["sessionId"], dollars * 100)
    event["data"]["object"]["payment_intent"] = intent
    event["data"]["object"]["amount_total"] = dollars * 100
    event["data"]["object"]["currency"] = "usd"
    assert deliver(api, event).status == 200
    return link["paymentId"], intent


def signed(api: Api, event_type: str, obj: dict[str, Any]) -> None:
    """Delivers a Stripe event signed with the platform's webhook secret in effect."""
    event = {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": event_type, "data": {"object": obj}}
    payload = json.dumps(event)
    secret = config.stripe_credentials().webhook_secret
    assert deliver(api, event, signature=payments.sign_payload(payload, secret), body=payload).status == 200


def earnings(owner: Session) -> dict[str, Any]:
    return owner.call("GET", "/api/earnings").body


def balance(session: Session) -> dict[str, Any]:
    return session.call("GET", "/api/balance").body


def test_an_owners_own_markup_cannot_turn_a_refunded_payment_into_a_payout(api: Api, stripe: Any) -> None:
    """Markup 100 on one's own app, $100 by card, a call of cost 1.00, a payout, then the refund: nothing left."""
    owner = api.sign_in()
    app = owner.create_app("Mine", markup="100")
    key = owner.create_key(app["id"])["key"]
    _, intent = pay(api, owner, 100)
    call = api.call("POST", "/api/transactions", key, {**CALL, "cost": "1.00"})
    assert call.status == 201 and call.body["markupAmount"] == "0.000000"  # one's own calls carry no markup
    stripe()
    onboard(api, owner)
    assert owner.call("POST", "/api/payouts", {"amount": "99.00"}).status == 402
    signed(api, "charge.refunded", {"object": "charge", "amount_refunded": 10000, "payment_intent": intent})
    assert balance(owner)["balance"] == "0.000000"  # the 99 unspent went back; the 1 spent stays spent
    assert earnings(owner)["paidOut"] == "0.000000"


def test_a_customers_refunded_payment_takes_back_the_earnings_it_paid_even_after_a_payout(
    api: Api, stripe: Any
) -> None:
    owner = api.sign_in()
    app = owner.create_app("Theirs", markup="100", acceptsCustomers=True)
    customer = api.sign_in()
    key = customer.create_key(app["id"])["key"]
    _, intent = pay(api, customer, 100)
    call = api.call("POST", "/api/transactions", key, {**CALL, "cost": "1.00"})
    assert call.body["cost"] == "100.000000" and call.body["earnedAmount"] == "99.000000"  # paid in cash
    stripe()
    onboard(api, owner)
    assert owner.call("POST", "/api/payouts", {"amount": "99.00"}).status == 201
    signed(api, "charge.refunded", {"object": "charge", "amount_refunded": 10000, "payment_intent": intent})
    shown = earnings(owner)
    assert (shown["available"], shown["reversed"], shown["paidOut"]) == ("-99.000000", "99.000000", "99.000000")
    refused = owner.call("POST", "/api/payouts", {"amount": "10.00"})
    assert refused.status == 402  # nothing more leaves until new earnings cover what was paid out
    assert balance(customer)["balance"] == "0.000000"  # a refund never makes the buyer's balance negative


def test_admin_granted_credits_earn_nothing_to_pay_out(api: Api, admin: Session, stripe: Any) -> None:
    owner = api.sign_in()
    app = owner.create_app("Granted", markup="100", acceptsCustomers=True)
    customer = api.sign_in()
    key = customer.create_key(app["id"])["key"]
    granted = admin.call("POST", "/api/balance", {"userId": customer.user["id"], "amount": "50", "reason": "promo"})
    assert granted.status == 200
    call = api.call("POST", "/api/transactions", key, {**CALL, "cost": "0.50"})
    assert call.body["markupAmount"] == "49.500000" and call.body["earnedAmount"] == "0.000000"
    stripe()
    onboard(api, owner)
    assert earnings(owner)["lifetime"] == "0.000000"
    assert owner.call("POST", "/api/payouts", {"amount": "49.50"}).status == 402
    # money received outside Stripe is cash: it earns
    cash = {"userId": customer.user["id"], "amount": "50", "reason": "wire transfer", "cash": True}
    assert admin.call("POST", "/api/balance", cash).status == 200
    assert api.call("POST", "/api/transactions", key, {**CALL, "cost": "0.50"}).body["earnedAmount"] == "49.500000"


def test_a_refund_takes_held_credits_and_the_hold_loses_them(api: Api) -> None:
    """Pay $10, hold $10, refund $10: the refund takes the $10, the hold is left with nothing."""
    user = api.sign_in()
    app = user.create_app("Held")
    key = user.create_key(app["id"])["key"]
    _, intent = pay(api, user, 10)
    hold = api.call("POST", "/api/holds", key, {"amount": "10"})
    assert hold.status == 201
    signed(api, "charge.refunded", {"object": "charge", "amount_refunded": 1000, "payment_intent": intent})
    shown = balance(user)
    assert (shown["balance"], shown["held"], shown["available"]) == ("0.000000", "0.000000", "0.000000")
    assert api.call("GET", f"/api/holds/{hold.body['id']}", key).body["amount"] == "0.000000"
    assert api.call("DELETE", f"/api/holds/{hold.body['id']}", key).status == 200
    assert balance(user)["spendable"] == "0.000000"  # released, nothing came back
    settle_later = api.call("POST", "/api/holds", key, {"amount": "1"})
    assert settle_later.status == 402


def test_a_settle_after_a_refund_took_its_hold_overruns_into_debt(api: Api) -> None:
    user = api.sign_in()
    app = user.create_app("Held")
    key = user.create_key(app["id"])["key"]
    _, intent = pay(api, user, 10)
    hold = api.call("POST", "/api/holds", key, {"amount": "8"}).body
    signed(api, "charge.refunded", {"object": "charge", "amount_refunded": 500, "payment_intent": intent})
    settled = api.call("POST", f"/api/holds/{hold['id']}/settle", key, {**CALL, "cost": "7"})
    assert settled.status == 201 and settled.body["overrun"] is True
    assert settled.body["shortfall"] == "2.000000" and balance(user)["debt"] == "2.000000"


def test_a_dispute_takes_the_payment_back_and_the_spent_part_becomes_debt_then_won_puts_it_back(api: Api) -> None:
    owner = api.sign_in()
    app = owner.create_app("Disputed", markup="2", acceptsCustomers=True)
    customer = api.sign_in()
    key = customer.create_key(app["id"])["key"]
    payment_id, intent = pay(api, customer, 10)
    assert api.call("POST", "/api/transactions", key, {**CALL, "cost": "2"}).body["earnedAmount"] == "2.000000"
    dispute = {"id": "dp_1", "object": "dispute", "amount": 1000, "payment_intent": intent, "status": "needs_response"}
    signed(api, "charge.dispute.created", dispute)
    shown = balance(customer)
    assert (shown["balance"], shown["debt"], shown["spendable"]) == ("-4.000000", "4.000000", "0.000000")
    assert earnings(owner)["reversed"] == "2.000000"
    payments = customer.call("GET", "/api/payments").body["payments"]
    assert [p["status"] for p in payments if p["id"] == payment_id] == ["disputed"]
    signed(api, "charge.dispute.created", dispute)  # Stripe delivers again: still one dispute, one event
    reported = [e["data"] for e in events_of(customer.user["id"], "dispute.created")]
    assert len(reported) == 1
    assert reported[0]["paymentId"] == payment_id and reported[0]["disputedAmount"] == "10.00"
    kinds = [e["kind"] for e in customer.call("GET", "/api/ledger").body["entries"]]
    assert kinds[0] == "dispute"
    signed(api, "charge.dispute.closed", {**dispute, "status": "won"})
    shown = balance(customer)
    assert (shown["balance"], shown["debt"]) == ("6.000000", "0.000000")
    assert customer.call("GET", "/api/ledger").body["entries"][0]["kind"] == "dispute_won"
    payments = customer.call("GET", "/api/payments").body["payments"]
    assert [p["status"] for p in payments if p["id"] == payment_id] == ["completed"]


def test_a_lost_dispute_leaves_the_debt(api: Api) -> None:
    user = api.sign_in()
    app = user.create_app("Lost")
    key = user.create_key(app["id"])["key"]
    _, intent = pay(api, user, 5)
    api.call("POST", "/api/transactions", key, {**CALL, "cost": "3"})
    dispute = {"id": "dp_2", "object": "dispute", "amount": 500, "payment_intent": intent, "status": "needs_response"}
    signed(api, "charge.dispute.created", dispute)
    signed(api, "charge.dispute.closed", {**dispute, "status": "lost"})
    assert (balance(user)["balance"], balance(user)["debt"]) == ("-3.000000", "3.000000")
    _, _ = pay(api, user, 5)  # a payment pays the debt first
    assert (balance(user)["balance"], balance(user)["debt"]) == ("2.000000", "0.000000")


def test_a_deauthorized_account_gets_no_more_payouts(api: Api, stripe: Any) -> None:
    owner = api.sign_in()
    app = owner.create_app("Leaving", markup="2", acceptsCustomers=True)
    _, key = owner.customer_of(app, "40")
    api.call("POST", "/api/transactions", key, {**CALL, "cost": "15"})
    stripe()
    account = onboard(api, owner)
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "account.application.deauthorized",
        "account": account,
        "data": {"object": {"id": "ca_platform", "object": "application"}},
    }
    payload = json.dumps(event)
    signature = payments.sign_payload(payload, CONNECT_SECRET)
    reply = api.call("POST", "/api/stripe/webhook", data=payload, headers={"Stripe-Signature": signature})
    assert reply.status == 200
    assert earnings(owner)["payoutsEnabled"] is False
    refused = owner.call("POST", "/api/payouts", {"amount": "10.00"})
    assert refused.status == 409 and refused.error_code == "payouts_not_enabled"


def test_debt_repaid_in_cash_earns_the_deferred_markup_and_is_cash_backed(api: Api) -> None:
    owner = api.sign_in()
    app = owner.create_app("Deferred", markup="3", acceptsCustomers=True)
    customer = api.sign_in()
    key = customer.create_key(app["id"])["key"]
    recorded = api.call("POST", "/api/transactions", key, {**CALL, "cost": "1"})
    assert recorded.body["shortfall"] == "3.000000" and recorded.body["earnedAmount"] == "0.000000"
    admin = api.sign_in(ADMIN_EMAIL)
    grant = {"userId": customer.user["id"], "amount": "1", "reason": "promo"}  # not cash: repays, earns nothing
    assert admin.call("POST", "/api/balance", grant).status == 200
    assert earnings(owner)["lifetime"] == "0.000000"
    pay(api, customer, 2)  # cash repays the other 2 of the 3: two thirds of the markup of 2
    assert earnings(owner)["lifetime"] == "1.333333"
