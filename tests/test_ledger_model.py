"""A stateful property test: a plain in-memory model of one user's money against the real API and database:
cash and non-cash credits, grants (expiring), debits, calls (post-paid into debt, or asking first), holds (settled,
released, lapsed), payments and refunds, with the lots each takes in order and the invariants balance = the sum of
the ledger = the lots less the debt, and held = the sum of active holds."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from conftest import ADMIN_EMAIL, Api
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from echo_control import db, holds, housekeeping
from local_runner.server import LocalApiGateway
from tests.invariants import held_mismatches, lot_mismatches, statement_mismatches, unreconciled_balances
from tests.test_payments import completed_event, deliver, refund_event

MICRO = Decimal("0.000001")
amounts = st.integers(min_value=1, max_value=3_000_000).map(lambda micros: Decimal(micros) * MICRO)
idempotency_keys = st.sampled_from(["k1", "k2", "k3", None, None])


@dataclass
class Lot:
    """A credit in the model: calls take grants (soonest expiry first), then non-cash adjustments, then cash, each
    group oldest first."""

    seq: int
    source: str
    cash: bool
    remaining: Decimal
    expires_in: int | None = None  # days, grants only
    expired: bool = False
    payment: str | None = None

    @property
    def order(self) -> tuple:
        group = 0 if self.source == "grant" else 1 if not self.cash else 2
        return (group, self.expires_in if self.expires_in is not None else 10**9, self.seq)


class LedgerMachine(RuleBasedStateMachine):
    api: Api

    @initialize()
    def start(self) -> None:
        self.api = Api(LocalApiGateway.shared())
        self.admin = self.api.sign_in(ADMIN_EMAIL)
        self.user = self.api.sign_in()
        app = self.user.create_app()
        self.key = self.user.create_key(app["id"])["key"]
        self.lots: list[Lot] = []
        self.debt = Decimal(0)
        self.spent = Decimal(0)
        self.sent: dict[str, tuple[Decimal, dict]] = {}  # idempotency key → (cost, first response)
        self.prefix = uuid.uuid4().hex[:8]
        self.holds: dict[str, Decimal] = {}  # active hold id → amount, oldest first
        self.paid: list[tuple[str, str, Decimal, Decimal]] = []  # (payment id, intent, amount, refunded)
        self.seq = 0

    @property
    def live(self) -> list[Lot]:
        return sorted((lot for lot in self.lots if not lot.expired and lot.remaining > 0), key=lambda lot: lot.order)

    @property
    def balance(self) -> Decimal:
        return sum((lot.remaining for lot in self.live), Decimal(0)) - self.debt

    @property
    def held(self) -> Decimal:
        return sum(self.holds.values(), Decimal(0))

    @property
    def available(self) -> Decimal:
        return self.balance - self.held

    def add_lot(self, amount: Decimal, source: str, cash: bool, **fields: Any) -> None:
        repaid = min(self.debt, amount)  # a credit pays the debt first
        self.debt -= repaid
        self.seq += 1
        self.lots.append(Lot(self.seq, source, cash, amount - repaid, **fields))

    def take(self, amount: Decimal) -> Decimal:
        """Takes up to `amount` from the live lots in their order; returns what they gave."""
        taken = Decimal(0)
        for lot in self.live:
            part = min(lot.remaining, amount - taken)
            lot.remaining -= part
            taken += part
        return taken

    def charge(self, cost: Decimal) -> None:
        """A recorded call: the lots pay what they can, the rest is debt."""
        self.debt += cost - self.take(cost)
        self.spent += cost

    @rule(amount=amounts, cash=st.booleans())
    def admin_credit(self, amount: Decimal, cash: bool) -> None:
        reply = self.admin.call(
            "POST",
            "/api/balance",
            {"userId": self.user.user["id"], "amount": str(amount), "reason": "model credit", "cash": cash},
        )
        assert reply.status == 200, reply.body
        self.add_lot(amount, "adjustment", cash)

    @rule(amount=amounts, days=st.integers(min_value=1, max_value=30))
    def grant(self, amount: Decimal, days: int) -> None:
        with db.transaction() as conn:
            db.apply_entry(
                conn,
                user_id=uuid.UUID(self.user.user["id"]),
                kind="grant_credit",
                amount=amount,
                idempotency_key=f"model-grant:{uuid.uuid4()}",
                source="grant",
                expires_at=datetime.now(UTC) + timedelta(days=days, seconds=self.seq),
            )
        self.add_lot(amount, "grant", False, expires_in=days * 86400 + self.seq)

    @precondition(lambda self: any(lot.source == "grant" and not lot.expired for lot in self.lots))
    @rule(data=st.data(), sweep=st.booleans())
    def grant_expires(self, data: st.DataObject, sweep: bool) -> None:
        """A grant reaches its expiresAt: what is left of it stops counting at once, swept or not."""
        grants = [lot for lot in self.lots if lot.source == "grant" and not lot.expired]
        lot = data.draw(st.sampled_from(grants))
        index = sorted(grants, key=lambda g: g.seq).index(lot)
        db.connection().execute(
            "UPDATE credit_lots SET expires_at = now() - interval '1 second' WHERE id = ("
            "SELECT id FROM credit_lots WHERE user_id = %s AND source = 'grant' AND expires_at > now() "
            "ORDER BY id OFFSET %s LIMIT 1)",
            [self.user.user["id"], index],
        )
        lot.expired = True
        if sweep:
            housekeeping.expire_grants(1000)

    @rule(amount=amounts)
    def admin_decrement(self, amount: Decimal) -> None:
        reply = self.admin.call(
            "POST",
            "/api/balance",
            {"userId": self.user.user["id"], "amount": str(amount), "operation": "decrement", "reason": "model debit"},
        )
        if amount <= self.available:
            assert reply.status == 200, reply.body
            assert self.take(amount) == amount
        else:
            assert reply.status == 402

    @rule(cost=amounts, key=idempotency_keys, require_funds=st.booleans())
    def metered_call(self, cost: Decimal, key: str | None, require_funds: bool) -> None:
        headers = {"Idempotency-Key": f"{self.prefix}-{key}"} if key else {}
        body = {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 5, "cost": str(cost)}
        if require_funds:
            body["requireFunds"] = True
        reply = self.api.call("POST", "/api/transactions", self.key, body, headers=headers)
        if key and key in self.sent:
            first_cost, first = self.sent[key]
            if first_cost == cost and ("requireFunds" in body) == ("requireFunds" in first["request"]):
                assert reply.status == 201 and reply.body == first["reply"]  # replayed, no second debit
            else:
                assert reply.status == 409
            return
        if require_funds and cost > self.available:
            assert reply.status == 402
            return
        assert reply.status == 201, reply.body
        assert Decimal(reply.body["shortfall"]) == cost - min(cost, max(self.available, Decimal(0)))
        self.charge(cost)
        if key:
            self.sent[key] = (cost, {"request": body, "reply": reply.body})

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.sent)))
        _, first = self.sent[key]
        reply = self.api.call(
            "POST", "/api/transactions", self.key, first["request"], headers={"Idempotency-Key": f"{self.prefix}-{key}"}
        )
        assert reply.status == 201 and reply.body == first["reply"]

    @rule(amount=amounts)
    def hold(self, amount: Decimal) -> None:
        reply = self.api.call("POST", "/api/holds", self.key, {"amount": str(amount)})
        if amount <= self.available:
            assert reply.status == 201, reply.body
            self.holds[reply.body["id"]] = amount
            assert Decimal(reply.body["available"]) == self.available
        else:
            assert reply.status == 402

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), cost=amounts)
    def settle(self, data: st.DataObject, cost: Decimal) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.holds)))
        body = {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 5, "cost": str(cost)}
        reply = self.api.call("POST", f"/api/holds/{hold_id}/settle", self.key, body)
        assert reply.status == 201, reply.body
        amount = self.holds.pop(hold_id)
        # the call is recorded in full: what passes the hold comes from what is available, the rest is debt
        shortfall = cost - min(cost, max(self.available + amount, Decimal(0)))
        assert Decimal(reply.body["cost"]) == cost and Decimal(reply.body["shortfall"]) == shortfall
        assert reply.body["overrun"] is (shortfall > 0)
        self.charge(cost)

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.holds)))
        reply = self.api.call("DELETE", f"/api/holds/{hold_id}", self.key)
        assert reply.status == 200 and reply.body["status"] == "released"
        del self.holds[hold_id]

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), sweep=st.booleans())
    def lapse(self, data: st.DataObject, sweep: bool) -> None:
        """A hold reaches its expiresAt: it stops counting at once, swept or not."""
        hold_id = data.draw(st.sampled_from(sorted(self.holds)))
        db.connection().execute("UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = %s", [hold_id])
        if sweep:
            holds.sweep_lapsed_holds()
        del self.holds[hold_id]
        reply = self.api.call(
            "POST",
            f"/api/holds/{hold_id}/settle",
            self.key,
            {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "cost": "0"},
        )
        assert reply.status == 409 and reply.error_code == "hold_expired"

    @rule(cents=st.integers(min_value=100, max_value=5000))
    def payment(self, cents: int) -> None:
        link = self.user.call("POST", "/api/stripe/payment-link", {"amount": f"{cents / 100:.2f}"}).body
        intent = f"pi_model_{uuid.uuid4().hex}"
        event = completed_event(
            link["paymentId"], self.user.user["id"], link["sessionId"], cents, payment_intent=intent
        )
        assert deliver(self.api, event).status == 200
        amount = Decimal(cents) / 100
        self.add_lot(amount, "payment", True, payment=link["paymentId"])
        self.paid.append((link["paymentId"], intent, amount, Decimal(0)))

    @precondition(lambda self: bool(self.paid))
    @rule(data=st.data(), share=st.integers(min_value=1, max_value=100))
    def refund(self, data: st.DataObject, share: int) -> None:
        """A refund takes back what is left of the payment's credits, held ones included (the holds lose it, newest
        first); credits already spent stay spent."""
        index = data.draw(st.integers(min_value=0, max_value=len(self.paid) - 1))
        payment_id, intent, amount, refunded = self.paid[index]
        total = max(refunded, (amount * share / 100).quantize(Decimal("0.01")))
        event = refund_event(payment_id, self.user.user["id"], int(total * 100), intent)
        assert deliver(self.api, event).status == 200
        lot = next(lot for lot in self.lots if lot.payment == payment_id)
        lot.remaining -= min(total - refunded, lot.remaining)
        excess = self.held - max(self.balance, Decimal(0))
        for hold_id in reversed(list(self.holds)):
            cut = min(self.holds[hold_id], max(excess, Decimal(0)))
            self.holds[hold_id] -= cut
            excess -= cut
        self.paid[index] = (payment_id, intent, amount, total)

    @invariant()
    def matches_the_model(self) -> None:
        if not hasattr(self, "user"):
            return
        shown = self.user.call("GET", "/api/balance").body
        assert Decimal(shown["balance"]) == self.balance
        assert Decimal(shown["debt"]) == self.debt
        assert Decimal(shown["totalSpent"]) == self.spent
        assert Decimal(shown["held"]) == self.held
        assert Decimal(shown["available"]) == self.available
        assert Decimal(shown["spendable"]) == max(self.available, Decimal(0))
        assert [(lot["source"], lot["cash"], Decimal(lot["remaining"])) for lot in shown["lots"]] == [
            (lot.source, lot.cash, lot.remaining) for lot in self.live
        ]

    def teardown(self) -> None:
        assert unreconciled_balances() == []
        assert held_mismatches() == []
        assert statement_mismatches() == []
        assert lot_mismatches() == []


LedgerMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.usefixtures("database_url")
class TestLedgerModel(LedgerMachine.TestCase):  # type: ignore[misc,valid-type]
    pass
