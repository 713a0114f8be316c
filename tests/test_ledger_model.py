"""A stateful property test: a plain in-memory model of one user's money against the real API and database."""

import uuid
from decimal import Decimal

import pytest
from conftest import ADMIN_EMAIL, Api
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from local_runner.server import LocalApiGateway
from tests.invariants import unreconciled_balances

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
        if amount <= self.balance:
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
        if cost <= self.balance:
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

    @invariant()
    def matches_the_model(self) -> None:
        if not hasattr(self, "user"):
            return
        shown = self.user.call("GET", "/api/balance").body
        assert Decimal(shown["balance"]) == self.balance
        assert Decimal(shown["totalSpent"]) == self.spent

    def teardown(self) -> None:
        assert unreconciled_balances() == []


LedgerMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.usefixtures("database_url")
class TestLedgerModel(LedgerMachine.TestCase):  # type: ignore[misc,valid-type]
    pass
