"""A stateful property test: a plain in-memory model of one user's money against the real API and database:
credits, debits, calls, holds (settled, released, lapsed), payments and refunds, with the invariants
balance = the sum of the ledger, available >= 0 and held = the sum of active holds."""

import uuid
from decimal import Decimal

import pytest
from conftest import ADMIN_EMAIL, Api
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from echo_control import db, holds
from local_runner.server import LocalApiGateway
from tests.invariants import held_mismatches, statement_mismatches, unreconciled_balances
from tests.test_payments import completed_event, deliver, refund_event

MICRO = Decimal("0.000001")
amounts = st.integers(min_value=1, max_value=3_000_000).map(lambda micros: Decimal(micros) * MICRO)
idempotency_keys = st.sampled_from(["k1", "k2", "k3", None, None])


class LedgerMachine(RuleBasedStateMachine):
    api: Api

    @initialize()
    def start(self) -> None:
        self.api = Api(LocalApiGateway.shared())
        self.admin = self.api.sign_in(ADMIN_EMAIL)
        self.user = self.api.sign_in()
        app = self.user.create_app()
        self.key = self.user.create_key(app["id"])["key"]
        self.balance = Decimal(0)
        self.spent = Decimal(0)
        self.sent: dict[str, tuple[Decimal, dict]] = {}  # idempotency key → (cost, first response)
        self.prefix = uuid.uuid4().hex[:8]
        self.holds: dict[str, Decimal] = {}  # active hold id → amount
        self.paid: list[tuple[str, str, Decimal, Decimal]] = []  # (payment id, intent, amount, refunded)

    @property
    def held(self) -> Decimal:
        return sum(self.holds.values(), Decimal(0))

    @property
    def available(self) -> Decimal:
        return self.balance - self.held

    @rule(amount=amounts)
    def admin_credit(self, amount: Decimal) -> None:
        reply = self.admin.call(
            "POST", "/api/balance", {"userId": self.user.user["id"], "amount": str(amount), "reason": "model credit"}
        )
        assert reply.status == 200, reply.body
        self.balance += amount

    @rule(amount=amounts)
    def admin_decrement(self, amount: Decimal) -> None:
        reply = self.admin.call(
            "POST",
            "/api/balance",
            {"userId": self.user.user["id"], "amount": str(amount), "operation": "decrement", "reason": "model debit"},
        )
        if amount <= self.available:
            assert reply.status == 200, reply.body
            self.balance -= amount
        else:
            assert reply.status == 402

    @rule(cost=amounts, key=idempotency_keys)
    def metered_call(self, cost: Decimal, key: str | None) -> None:
        headers = {"Idempotency-Key": f"{self.prefix}-{key}"} if key else {}
        body = {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 5, "cost": str(cost)}
        reply = self.api.call("POST", "/api/transactions", self.key, body, headers=headers)
        if key and key in self.sent:
            first_cost, first = self.sent[key]
            if first_cost == cost:
                assert reply.status == 201 and reply.body == first  # replayed, no second debit
            else:
                assert reply.status == 409
            return
        if cost <= self.available:
            assert reply.status == 201, reply.body
            self.balance -= cost
            self.spent += cost
            if key:
                self.sent[key] = (cost, reply.body)
        else:
            assert reply.status == 402

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.sent)))
        cost, first = self.sent[key]
        body = {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 5, "cost": str(cost)}
        reply = self.api.call(
            "POST", "/api/transactions", self.key, body, headers={"Idempotency-Key": f"{self.prefix}-{key}"}
        )
        assert reply.status == 201 and reply.body == first

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
        taken = min(cost, self.available + amount)  # the rest of the hold is released; an overrun takes what is free
        assert Decimal(reply.body["cost"]) == taken and reply.body["overrun"] is (taken < cost)
        self.balance -= taken
        self.spent += taken

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
        payment = {"id": link["paymentId"]}
        assert deliver(self.api, event).status == 200
        amount = Decimal(cents) / 100
        self.balance += amount
        self.paid.append((payment["id"], intent, amount, Decimal(0)))

    @precondition(lambda self: bool(self.paid))
    @rule(data=st.data(), share=st.integers(min_value=1, max_value=100))
    def refund(self, data: st.DataObject, share: int) -> None:
        """A refund takes back what it can of the payment, never money that is held or already spent."""
        index = data.draw(st.integers(min_value=0, max_value=len(self.paid) - 1))
        payment_id, intent, amount, refunded = self.paid[index]
        total = max(refunded, (amount * share / 100).quantize(Decimal("0.01")))
        event = refund_event(payment_id, self.user.user["id"], int(total * 100), intent)
        assert deliver(self.api, event).status == 200
        taken = min(total - refunded, self.available)
        self.balance -= taken
        self.paid[index] = (payment_id, intent, amount, total)

    @invariant()
    def matches_the_model(self) -> None:
        if not hasattr(self, "user"):
            return
        shown = self.user.call("GET", "/api/balance").body
        assert Decimal(shown["balance"]) == self.balance
        assert Decimal(shown["totalSpent"]) == self.spent
        assert Decimal(shown["held"]) == self.held
        assert Decimal(shown["available"]) == self.available >= 0

    def teardown(self) -> None:
        assert unreconciled_balances() == []
        assert held_mismatches() == []
        assert statement_mismatches() == []


LedgerMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.usefixtures("database_url")
class TestLedgerModel(LedgerMachine.TestCase):  # type: ignore[misc,valid-type]
    pass
