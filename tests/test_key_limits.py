"""Key spend limits (day, month, total; UTC) hold exactly under concurrency, for calls and holds alike."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from conftest import Api, KeyHolder, credit

from tests.invariants import held_mismatches, unreconciled_balances

# A call that asks first: refused (402) past the limit. Without requireFunds it would be recorded (see below).
CALL = {"model": "gpt-4o", "inputTokens": 100, "outputTokens": 50, "cost": "0.05", "requireFunds": True}


@pytest.fixture(autouse=True)
def consistent() -> Any:
    yield
    assert unreconciled_balances() == []
    assert held_mismatches() == []


def limited(user: Any, spend_limit: str, period: str) -> KeyHolder:
    app = user.create_app()
    created = user.create_key(app["id"], spendLimit=spend_limit, limitPeriod=period)
    assert Decimal(created["spendLimit"]) == Decimal(spend_limit) and created["limitPeriod"] == period
    return KeyHolder(user, app, created["key"])


def test_calls_stop_at_the_keys_limit_with_key_limit_exceeded(user: Any) -> None:
    holder = limited(user, "0.10", "day")
    credit(user.user["id"], "5.00")
    assert [holder.call("POST", "/api/transactions", CALL).status for _ in range(2)] == [201, 201]
    refused = holder.call("POST", "/api/transactions", CALL)
    assert refused.status == 402 and refused.error_code == "key_limit_exceeded"
    assert Decimal(user.call("GET", "/api/balance").body["balance"]) == Decimal("4.90")
    listed = user.call("GET", "/api/api-keys").body["apiKeys"][0]
    assert Decimal(listed["spentInPeriod"]) == Decimal("0.10")
    # Another key of the same user is not limited by it.
    other = KeyHolder(user, holder.app, user.create_key(holder.app["id"])["key"])
    assert other.call("POST", "/api/transactions", CALL).status == 201


def test_100_concurrent_calls_against_a_limit_of_20_take_exactly_20(api: Api, user: Any) -> None:
    holder = limited(user, "1.00", "month")
    credit(user.user["id"], "10.00")

    def call(_: int) -> int:
        return Api(api.client.application).call("POST", "/api/transactions", holder.key, CALL).status

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(call, range(100)))
    assert statuses.count(201) == 20 and statuses.count(402) == 80
    assert Decimal(user.call("GET", "/api/balance").body["balance"]) == Decimal("9.00")


def test_holds_count_against_the_limit_and_a_settle_cannot_pass_it(user: Any) -> None:
    holder = limited(user, "1.00", "total")
    credit(user.user["id"], "10.00")
    first = holder.call("POST", "/api/holds", {"amount": "0.80"})
    assert first.status == 201
    refused = holder.call("POST", "/api/holds", {"amount": "0.30"})
    assert refused.status == 402 and refused.error_code == "key_limit_exceeded"
    assert holder.call("POST", "/api/transactions", {**CALL, "cost": "0.21"}).error_code == "key_limit_exceeded"
    settled = holder.call("POST", f"/api/holds/{first.body['id']}/settle", {**CALL, "cost": "3.00"})
    assert settled.status == 201 and settled.body["overrun"] is True
    assert Decimal(settled.body["cost"]) == Decimal("3.00")  # recorded: the call happened
    assert Decimal(settled.body["shortfall"]) == Decimal("2.00")  # the limit, not the balance, fell short
    assert holder.call("POST", "/api/transactions", {**CALL, "cost": "0.01"}).status == 402


def test_setting_a_limit_later_counts_what_the_key_spent_in_the_period(user: Any) -> None:
    app = user.create_app()
    created = user.create_key(app["id"])
    holder = KeyHolder(user, app, created["key"])
    credit(user.user["id"], "5.00")
    for _ in range(3):
        assert holder.call("POST", "/api/transactions", CALL).status == 201
    updated = user.call("PUT", f"/api/api-keys/{created['id']}", {"spendLimit": "0.20", "limitPeriod": "month"})
    assert updated.status == 200, updated.body
    assert Decimal(updated.body["spentInPeriod"]) == Decimal("0.15")
    assert holder.call("POST", "/api/transactions", CALL).status == 201
    assert holder.call("POST", "/api/transactions", CALL).error_code == "key_limit_exceeded"
    raised = user.call("PUT", f"/api/api-keys/{created['id']}", {"spendLimit": "0.25"})  # the period stays
    assert raised.body["limitPeriod"] == "month" and Decimal(raised.body["spentInPeriod"]) == Decimal("0.20")
    assert holder.call("POST", "/api/transactions", CALL).status == 201
    removed = user.call("PUT", f"/api/api-keys/{created['id']}", {"spendLimit": None})
    assert removed.body["spendLimit"] is None and removed.body["limitPeriod"] is None
    assert holder.call("POST", "/api/transactions", CALL).status == 201


def test_a_day_limit_starts_again_the_next_utc_day(user: Any, database_url: str) -> None:
    holder = limited(user, "0.05", "day")
    credit(user.user["id"], "1.00")
    assert holder.call("POST", "/api/transactions", CALL).status == 201
    assert holder.call("POST", "/api/transactions", CALL).status == 402
    with psycopg.connect(database_url) as conn:  # what the clock passing midnight UTC does to the period
        conn.execute(
            "UPDATE api_keys SET spent_period_start = spent_period_start - 1 WHERE spend_limit IS NOT NULL "
            "AND user_id = %s",
            [user.user["id"]],
        )
    assert holder.call("POST", "/api/transactions", CALL).status == 201


@pytest.mark.parametrize(
    "body",
    [
        {"spendLimit": "-1", "limitPeriod": "day"},
        {"spendLimit": "1.0000001", "limitPeriod": "day"},
        {"spendLimit": "1", "limitPeriod": "week"},
        {"spendLimit": "1000000.01", "limitPeriod": "day"},
    ],
)
def test_bad_limits_are_4xx(user: Any, body: dict) -> None:
    app = user.create_app()
    assert user.call("POST", "/api/api-keys", {"echoAppId": app["id"], **body}).status in (400, 422)


def test_a_limit_without_a_period_is_monthly_and_a_period_without_a_limit_is_dropped(user: Any) -> None:
    app = user.create_app()
    assert user.create_key(app["id"], spendLimit="5")["limitPeriod"] == "month"
    unlimited = user.create_key(app["id"], limitPeriod="day")
    assert unlimited["spendLimit"] is None and unlimited["limitPeriod"] is None


def test_another_users_key_cannot_be_changed(user: Any, other_user: Any) -> None:
    app = user.create_app()
    key_id = user.create_key(app["id"])["id"]
    assert other_user.call("PUT", f"/api/api-keys/{key_id}", {"spendLimit": "1", "limitPeriod": "day"}).status == 404
    assert user.call("PUT", "/api/api-keys/not-a-key", {"name": "x"}).status == 404
    assert user.call("GET", "/api/api-keys").body["apiKeys"][0]["spendLimit"] is None
