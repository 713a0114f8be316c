"""Credit codes: admins make them, users redeem each once, never past maxUses under any concurrency; the grant is a
lot that calls take first, that expires creditDays after redemption and that earns nobody a markup."""

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from conftest import Api, Session

from echo_control import housekeeping
from tests.invariants import lot_mismatches, markup_not_earned, statement_mismatches, unreconciled_balances


@pytest.fixture(autouse=True)
def reconciled() -> Iterator[None]:
    yield
    assert unreconciled_balances() == []
    assert lot_mismatches() == []
    assert statement_mismatches() == []
    assert markup_not_earned() == []


def make_code(admin: Session, **fields: Any) -> dict[str, Any]:
    reply = admin.call("POST", "/api/credit-codes", {"amount": "5", "maxUses": 10, **fields})
    assert reply.status == 201, reply.body
    return reply.body


def test_an_admin_makes_a_code_and_a_user_redeems_it_once(admin: Session, user: Session) -> None:
    code = make_code(admin, creditDays=30)
    assert (code["amount"], code["maxUses"], code["uses"], code["creditDays"], code["expiresAt"]) == (
        "5.000000",
        10,
        0,
        30,
        None,
    )
    redeemed = user.call("POST", "/api/credit-codes/redeem", {"code": code["code"].lower()})
    assert redeemed.status == 201, redeemed.body
    assert redeemed.body["amount"] == "5.000000" and redeemed.body["balance"]["balance"] == "5.000000"
    expires = datetime.fromisoformat(redeemed.body["expiresAt"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    lots = user.call("GET", "/api/balance").body["lots"]
    assert [(lot["source"], lot["remaining"]) for lot in lots] == [("grant", "5.000000")]
    again = user.call("POST", "/api/credit-codes/redeem", {"code": code["code"]})
    assert again.status == 409 and again.error_code == "code_already_redeemed"
    assert user.call("GET", "/api/ledger").body["entries"][0]["kind"] == "grant_credit"
    listed = admin.call("GET", "/api/credit-codes").body["codes"]
    assert [c["uses"] for c in listed if c["id"] == code["id"]] == [1]


def test_codes_are_admins_only_and_bad_codes_are_refused(admin: Session, user: Session) -> None:
    assert user.call("POST", "/api/credit-codes", {"amount": "5", "maxUses": 1}).status == 403
    assert user.call("GET", "/api/credit-codes").status == 403
    missing = user.call("POST", "/api/credit-codes/redeem", {"code": "NOPE-NOPE-NOPE"})
    assert missing.status == 404 and missing.error_code == "code_not_found"
    expired = make_code(admin, expiresAt=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    reply = user.call("POST", "/api/credit-codes/redeem", {"code": expired["code"]})
    assert reply.status == 410 and reply.error_code == "code_expired"
    for bad in ({"amount": "0", "maxUses": 1}, {"amount": "5", "maxUses": 0}, {"amount": "5", "maxUses": 1, "x": 1}):
        assert admin.call("POST", "/api/credit-codes", bad).status in (400, 422)
    assert user.call("GET", "/api/balance").body["balance"] == "0.000000"


def test_30_users_at_once_on_a_code_of_10_uses_get_exactly_10(api: Api, admin: Session) -> None:
    code = make_code(admin, maxUses=10)
    users = [api.sign_in() for _ in range(30)]
    barrier = threading.Barrier(30)

    def redeem(session: Session) -> tuple[int, str | None]:
        barrier.wait(timeout=20)
        reply = Api(api.client.application).call(
            "POST", "/api/credit-codes/redeem", session.token, {"code": code["code"]}
        )
        return reply.status, reply.error_code

    with ThreadPoolExecutor(max_workers=30) as pool:
        results = list(pool.map(redeem, users))
    assert sum(status == 201 for status, _ in results) == 10
    assert {error for status, error in results if status != 201} == {"code_exhausted"}
    listed = admin.call("GET", "/api/credit-codes").body["codes"]
    assert [c["uses"] for c in listed if c["id"] == code["id"]] == [10]
    assert sum(session.call("GET", "/api/balance").body["balance"] == "5.000000" for session in users) == 10


def test_a_grant_is_spent_first_earns_nothing_and_its_rest_expires(
    api: Api, admin: Session, user: Session, database_url: str
) -> None:
    app = user.create_app("Promo", markup="2", acceptsCustomers=True)
    customer, key = user.customer_of(app, "10")  # 10 of cash
    code = make_code(admin, creditDays=7)
    assert customer.call("POST", "/api/credit-codes/redeem", {"code": code["code"]}).status == 201
    call = api.call(
        "POST", "/api/transactions", key, {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "cost": "1"}
    )
    assert call.body["cost"] == "2.000000" and call.body["earnedAmount"] == "0.000000"  # the grant paid it
    lots = customer.call("GET", "/api/balance").body["lots"]
    assert [(lot["source"], lot["remaining"]) for lot in lots] == [("grant", "3.000000"), ("adjustment", "10.000000")]
    with psycopg.connect(database_url, autocommit=True) as conn:  # seven days pass
        conn.execute(
            "UPDATE credit_lots SET expires_at = now() - interval '1 second' WHERE user_id = %s AND source = 'grant'",
            [customer.user["id"]],
        )
    shown = customer.call("GET", "/api/balance").body
    assert shown["balance"] == "10.000000" and [lot["source"] for lot in shown["lots"]] == ["adjustment"]
    assert housekeeping.expire_grants(100) == 1
    assert customer.call("GET", "/api/balance").body["balance"] == "10.000000"
    entry = customer.call("GET", "/api/ledger").body["entries"][0]
    assert (entry["kind"], entry["amount"]) == ("grant_expired", "-3.000000")
    paid = api.call(
        "POST", "/api/transactions", key, {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "cost": "1"}
    )
    assert paid.body["earnedAmount"] == "1.000000"  # cash now
