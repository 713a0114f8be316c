"""The ledger never loses or invents money: concurrency, idempotency, faults, and a model-based check."""

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import psycopg
import pytest
from conftest import Api, KeyHolder, credit

from tests.invariants import unreconciled_balances

CALL = {"model": "gpt-4o", "inputTokens": 100, "outputTokens": 50, "cost": "0.01"}


@pytest.fixture(autouse=True)
def reconciled() -> None:
    """After every ledger test: each cached balance equals the sum of that user's ledger entries."""
    yield
    assert unreconciled_balances() == []


def balance_of(holder: KeyHolder) -> Decimal:
    return Decimal(holder.session.call("GET", "/api/balance").body["balance"])


def count(database_url: str, sql: str, params: list) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchone()[0]


def test_a_call_is_recorded_and_debited_with_price_table_cost_and_markup(api: Api, user) -> None:
    app = user.create_app(markup="1.25", acceptsCustomers=True)
    user, key = user.customer_of(app, "5")  # the owner's own calls would carry no markup
    reply = api.call("POST", "/api/transactions", key, {"model": "gpt-4o", "inputTokens": 1000, "outputTokens": 500})
    assert reply.status == 201, reply.body
    # (1000 * 2.50 + 500 * 10.00) / 1e6 * 1.25 = 0.009375
    assert reply.body["cost"] == "0.009375"
    assert reply.body["totalTokens"] == 1500 and reply.body["status"] == "success"
    assert reply.body["balance"] == "4.990625"
    balance = user.call("GET", "/api/balance").body
    assert balance == {
        "userId": user.user["id"],
        "balance": "4.990625",
        "totalPaid": "0.000000",
        "totalSpent": "0.009375",
        "totalCredits": "5.000000",  # seed compatibility: balance = totalCredits - totalSpent
        "held": "0.000000",
        "available": "4.990625",
        "spendable": "4.990625",
        "debt": "0.000000",
        "lots": [
            {
                "id": balance["lots"][0]["id"],
                "source": "adjustment",
                "cash": True,
                "amount": "5.000000",
                "remaining": "4.990625",
                "expiresAt": None,
            }
        ],
        "currency": "usd",
    }
    assert api.call("GET", "/api/balance", key).body["balance"] == "4.990625"  # a key sees its user's balance


def test_a_dated_model_snapshot_uses_its_family_price(key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "5")
    body = {"model": "claude-3-5-sonnet-20241022", "inputTokens": 1_000_000, "outputTokens": 0}
    assert key_holder.call("POST", "/api/transactions", body).body["cost"] == "3.000000"


def test_unknown_model_without_cost_is_422_and_records_nothing(key_holder: KeyHolder, database_url: str) -> None:
    credit(key_holder.session.user["id"], "1")
    reply = key_holder.call("POST", "/api/transactions", {"model": "my-own-model", "inputTokens": 5, "outputTokens": 5})
    assert reply.status == 422
    assert (
        count(database_url, "SELECT count(*) FROM llm_transactions WHERE echo_app_id = %s", [key_holder.app["id"]]) == 0
    )
    with_cost = key_holder.call(
        "POST", "/api/transactions", {"model": "my-own-model", "inputTokens": 5, "outputTokens": 5, "cost": "0.5"}
    )
    assert with_cost.status == 201 and with_cost.body["cost"] == "0.500000"


def test_a_call_that_happened_is_recorded_when_short_and_the_rest_is_debt(key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "0.005")
    reply = key_holder.call("POST", "/api/transactions", CALL)
    assert reply.status == 201, reply.body
    assert reply.body["cost"] == "0.010000" and reply.body["shortfall"] == "0.005000"
    assert reply.body["balance"] == "-0.005000" and reply.body["available"] == "-0.005000"
    balance = key_holder.session.call("GET", "/api/balance").body
    assert balance["debt"] == "0.005000" and balance["spendable"] == "0.000000" and balance["lots"] == []
    covered = key_holder.call("POST", "/api/transactions", CALL)  # still recorded; all of it is debt now
    assert covered.status == 201 and covered.body["shortfall"] == "0.010000" and covered.body["balance"] == "-0.015000"
    credit(key_holder.session.user["id"], "1")  # a credit pays the debt first
    balance = key_holder.session.call("GET", "/api/balance").body
    assert balance["balance"] == "0.985000" and balance["debt"] == "0.000000"
    assert [lot["remaining"] for lot in balance["lots"]] == ["0.985000"]
    assert key_holder.call("POST", "/api/transactions", CALL).body["shortfall"] == "0.000000"


def test_require_funds_refuses_with_402_and_records_nothing(key_holder: KeyHolder, database_url: str) -> None:
    credit(key_holder.session.user["id"], "0.005")
    reply = key_holder.call("POST", "/api/transactions", {**CALL, "requireFunds": True})
    assert reply.status == 402 and reply.error_code == "insufficient_balance"
    assert balance_of(key_holder) == Decimal("0.005")
    assert (
        count(database_url, "SELECT count(*) FROM llm_transactions WHERE echo_app_id = %s", [key_holder.app["id"]]) == 0
    )


def test_500_concurrent_debits_of_a_cent_against_a_dollar(api: Api, key_holder: KeyHolder, database_url: str) -> None:
    credit(key_holder.session.user["id"], "1.00")

    def debit(_: int) -> int:
        body = {**CALL, "requireFunds": True}
        return Api(api.client.application).call("POST", "/api/transactions", key_holder.key, body).status

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(debit, range(500)))
    assert statuses.count(201) == 100
    assert statuses.count(402) == 400
    assert balance_of(key_holder) == Decimal("0")
    assert (
        count(database_url, "SELECT count(*) FROM llm_transactions WHERE echo_app_id = %s", [key_holder.app["id"]])
        == 100
    )


def test_the_same_idempotency_key_50_times_concurrently_debits_once(api: Api, key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "1.00")
    headers = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    barrier = threading.Barrier(25)

    def send(_: int):
        barrier.wait(timeout=10) if _ < 25 else None
        return Api(api.client.application).call("POST", "/api/transactions", key_holder.key, CALL, headers=headers)

    with ThreadPoolExecutor(max_workers=25) as pool:
        replies = list(pool.map(send, range(50)))
    assert {r.status for r in replies} == {201}
    assert len({r.body["id"] for r in replies}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in replies) == 49
    assert balance_of(key_holder) == Decimal("0.99")


def test_idempotency_key_reused_with_a_different_body_is_409(key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "1.00")
    headers = {"Idempotency-Key": "same-key"}
    assert key_holder.call("POST", "/api/transactions", CALL, headers=headers).status == 201
    reply = key_holder.call("POST", "/api/transactions", {**CALL, "cost": "0.02"}, headers=headers)
    assert reply.status == 409 and reply.error_code == "idempotency_key_reused"
    assert balance_of(key_holder) == Decimal("0.99")


def test_a_402_with_an_idempotency_key_can_succeed_once_funded(key_holder: KeyHolder) -> None:
    headers = {"Idempotency-Key": "fund-then-retry"}
    body = {**CALL, "requireFunds": True}
    assert key_holder.call("POST", "/api/transactions", body, headers=headers).status == 402
    credit(key_holder.session.user["id"], "0.01")
    assert key_holder.call("POST", "/api/transactions", body, headers=headers).status == 201
    assert key_holder.call("POST", "/api/transactions", body, headers=headers).headers["Idempotent-Replayed"] == "true"
    assert balance_of(key_holder) == Decimal("0")


def test_a_connection_killed_mid_debit_leaves_nothing_and_a_retry_succeeds_once(
    api: Api, key_holder: KeyHolder, database_url: str
) -> None:
    user_id = key_holder.session.user["id"]
    credit(user_id, "1.00")
    headers = {"Idempotency-Key": f"killed-{uuid.uuid4()}"}
    result: dict = {}
    with psycopg.connect(database_url) as blocker, psycopg.connect(database_url, autocommit=True) as killer:
        # Hold the balance row so the debit stops mid-transaction (after claiming the idempotency key).
        blocker.execute("SELECT 1 FROM balances WHERE user_id = %s FOR UPDATE", [user_id])
        worker = threading.Thread(
            target=lambda: result.update(
                reply=Api(api.client.application).call(
                    "POST", "/api/transactions", key_holder.key, CALL, headers=headers
                )
            )
        )
        worker.start()
        pid = None
        for _ in range(200):
            row = killer.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                ["%funds AS%"],
            ).fetchone()
            if row:
                pid = row[0]
                break
            time.sleep(0.02)
        assert pid is not None, "the debit never reached the balance row"
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])
        worker.join(timeout=10)
        blocker.rollback()
    reply = result["reply"]
    assert reply.status == 503 and reply.headers["Retry-After"]
    assert balance_of(key_holder) == Decimal("1.00")
    assert count(database_url, "SELECT count(*) FROM llm_transactions WHERE user_id = %s", [user_id]) == 0
    claims = "SELECT count(*) FROM idempotency_keys i JOIN api_keys k ON k.id = i.scope_id WHERE k.user_id = %s"
    assert count(database_url, claims, [user_id]) == 0
    retried = [key_holder.call("POST", "/api/transactions", CALL, headers=headers) for _ in range(3)]
    assert [r.status for r in retried] == [201, 201, 201]
    assert len({r.body["id"] for r in retried}) == 1
    assert balance_of(key_holder) == Decimal("0.99")


def test_ledger_entries_cannot_be_updated_or_deleted(key_holder: KeyHolder, database_url: str) -> None:
    credit(key_holder.session.user["id"], "1")
    with psycopg.connect(database_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE ledger_entries SET amount = 1000 WHERE user_id = %s", [key_holder.session.user["id"]])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM ledger_entries WHERE user_id = %s", [key_holder.session.user["id"]])
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE balances SET balance = -1 WHERE user_id = %s", [key_holder.session.user["id"]])


# --- admin adjustments -------------------------------------------------------------------------------


def test_admin_adjusts_a_balance_with_a_reason_signed_or_with_operation(admin, user) -> None:
    uid = user.user["id"]
    up = admin.call("POST", "/api/balance", {"userId": uid, "amount": "10", "reason": "welcome"})
    assert up.status == 200 and up.body["balance"] == "10.000000"
    down = admin.call(
        "POST", "/api/balance", {"userId": uid, "amount": "2.5", "operation": "decrement", "reason": "correction"}
    )
    assert down.body["balance"] == "7.500000"
    signed = admin.call("POST", "/api/balance", {"userId": uid, "amount": "-0.5", "reason": "signed"})
    assert signed.body["balance"] == "7.000000"
    too_much = admin.call("POST", "/api/balance", {"userId": uid, "amount": "-7.01", "reason": "too much"})
    assert too_much.status == 402
    assert user.call("GET", "/api/balance").body["balance"] == "7.000000"
    replay = {"userId": uid, "amount": "1", "reason": "once", "idempotencyKey": "adj-1"}
    admin.call("POST", "/api/balance", replay)
    assert admin.call("POST", "/api/balance", replay).body["balance"] == "8.000000"


@pytest.mark.parametrize(
    "body",
    [
        {"amount": "1", "reason": "x"},
        {"userId": "u", "amount": "NaN", "reason": "x"},
        {"userId": "u", "amount": "Infinity", "reason": "x"},
        {"userId": "u", "amount": "1e400", "reason": "x"},
        {"userId": "u", "amount": "0.0000001", "reason": "x"},
        {"userId": "u", "amount": "1", "reason": ""},
        {"userId": "u", "amount": "1", "reason": "x", "operation": "multiply"},
    ],
)
def test_bad_adjustments_are_4xx(admin, body) -> None:
    assert 400 <= admin.call("POST", "/api/balance", body).status < 500


def test_only_admins_adjust(user, other_user) -> None:
    reply = user.call("POST", "/api/balance", {"userId": other_user.user["id"], "amount": "5", "reason": "me"})
    assert reply.status == 403
    assert other_user.call("GET", "/api/balance").body["balance"] == "0.000000"


# --- history -----------------------------------------------------------------------------------------


def test_history_filters_and_cursor_pagination_newest_first(key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "10")
    for i in range(7):
        body = {**CALL, "model": "gpt-4o" if i % 2 else "gpt-4o-mini", "status": "error" if i == 3 else "success"}
        assert key_holder.call("POST", "/api/transactions", body).status == 201
    session = key_holder.session
    seen, cursor = [], None
    while True:
        page = session.call(
            "GET", "/api/transactions", query={"limit": 3, **({"cursor": cursor} if cursor else {})}
        ).body
        seen += page["transactions"]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(seen) == 7 and len({t["id"] for t in seen}) == 7
    stamps = [(t["createdAt"], t["id"]) for t in seen]
    assert stamps == sorted(stamps, reverse=True)
    minis = session.call("GET", "/api/transactions", query={"model": "gpt-4o-mini"}).body["transactions"]
    assert len(minis) == 4 and {t["model"] for t in minis} == {"gpt-4o-mini"}
    errors = session.call("GET", "/api/transactions", query={"status": "error"}).body["transactions"]
    assert len(errors) == 1
    by_app = session.call("GET", "/api/transactions", query={"echoAppId": key_holder.app["id"]}).body
    assert len(by_app["transactions"]) == 7
    future = session.call("GET", "/api/transactions", query={"from": "2999-01-01T00:00:00Z"}).body
    assert future["transactions"] == [] and future["nextCursor"] is None
    assert session.call("GET", "/api/transactions", query={"cursor": "garbage!"}).status == 400
    assert session.call("GET", "/api/transactions", query={"limit": 0}).status == 422
    assert session.call("GET", "/api/transactions", query={"limit": 201}).status == 422
    assert session.call("GET", "/api/transactions", query={"status": "weird"}).status == 422


def test_reconciliation_catches_a_cached_balance_that_drifted(key_holder: KeyHolder, database_url: str) -> None:
    credit(key_holder.session.user["id"], "1")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE balances SET balance = balance + 1 WHERE user_id = %s", [key_holder.session.user["id"]])
        drifted = [str(r["user_id"]) for r in unreconciled_balances()]
        assert key_holder.session.user["id"] in drifted
        conn.execute("UPDATE balances SET balance = balance - 1 WHERE user_id = %s", [key_holder.session.user["id"]])
