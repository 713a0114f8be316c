"""Idempotency-Key: scoped per API key (calls, holds), per user (payouts), per adjusted user (admin adjustments), and
written once (echo_control.idempotency) for every money write."""

import ast
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import Api, Session, credit

from tests.invariants import unreconciled_balances

ROOT = Path(__file__).resolve().parents[1]
CALL = {"model": "gpt-4o", "inputTokens": 100, "outputTokens": 50, "cost": "0.01"}


@pytest.fixture(autouse=True)
def reconciled() -> None:
    yield
    assert unreconciled_balances() == []


def two_apps_keys(user: Session) -> tuple[str, str]:
    app_x, app_y = user.create_app("App X"), user.create_app("App Y")
    return user.create_key(app_x["id"])["key"], user.create_key(app_y["id"])["key"]


def balance(user: Session) -> Decimal:
    return Decimal(user.call("GET", "/api/balance").body["balance"])


def test_the_same_key_and_body_on_two_apps_records_two_calls(api: Api, user: Session) -> None:
    credit(user.user["id"], "1.00")
    key_x, key_y = two_apps_keys(user)
    headers = {"Idempotency-Key": "shared-key"}
    on_x = api.call("POST", "/api/transactions", key_x, CALL, headers=headers)
    on_y = api.call("POST", "/api/transactions", key_y, CALL, headers=headers)
    assert (on_x.status, on_y.status) == (201, 201)
    assert "Idempotent-Replayed" not in on_y.headers  # Y's call is its own, not X's answer
    assert on_x.body["id"] != on_y.body["id"] and on_x.body["echoAppId"] != on_y.body["echoAppId"]
    assert balance(user) == Decimal("0.98")
    # each key still replays its own call
    again = api.call("POST", "/api/transactions", key_y, CALL, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true" and again.body["id"] == on_y.body["id"]


def test_the_same_key_on_two_apps_holds_twice(api: Api, user: Session) -> None:
    credit(user.user["id"], "1.00")
    key_x, key_y = two_apps_keys(user)
    headers = {"Idempotency-Key": "shared-hold"}
    on_x = api.call("POST", "/api/holds", key_x, {"amount": "0.10"}, headers=headers)
    on_y = api.call("POST", "/api/holds", key_y, {"amount": "0.10"}, headers=headers)
    assert (on_x.status, on_y.status) == (201, 201) and on_x.body["id"] != on_y.body["id"]
    assert "Idempotent-Replayed" not in on_y.headers
    assert Decimal(user.call("GET", "/api/balance").body["held"]) == Decimal("0.20")


def test_a_key_used_for_a_call_is_409_for_a_hold(api: Api, user: Session) -> None:
    credit(user.user["id"], "1.00")
    key_x, _ = two_apps_keys(user)
    headers = {"Idempotency-Key": "one-use"}
    assert api.call("POST", "/api/transactions", key_x, CALL, headers=headers).status == 201
    hold = api.call("POST", "/api/holds", key_x, {"amount": "0.10"}, headers=headers)
    assert hold.status == 409 and hold.error_code == "idempotency_key_reused"


def test_a_money_amount_is_compared_by_value(api: Api, user: Session) -> None:
    credit(user.user["id"], "1.00")
    key_x, _ = two_apps_keys(user)
    headers = {"Idempotency-Key": "by-value"}
    first = api.call("POST", "/api/transactions", key_x, CALL, headers=headers)
    same = api.call("POST", "/api/transactions", key_x, {**CALL, "cost": "0.010000"}, headers=headers)
    assert same.status == 201 and same.headers["Idempotent-Replayed"] == "true" and same.body == first.body


def test_an_admin_adjustment_under_a_used_key_with_another_amount_is_409(admin: Session, user: Session) -> None:
    uid = user.user["id"]
    first = {"userId": uid, "amount": "1.00", "reason": "goodwill", "idempotencyKey": "adj-key"}
    done = admin.call("POST", "/api/balance", first)
    assert done.status == 200 and done.body["balance"] == "1.000000"
    other = admin.call("POST", "/api/balance", {**first, "amount": "2.00"})
    assert other.status == 409 and other.error_code == "idempotency_key_reused"
    replay = admin.call("POST", "/api/balance", first)
    assert replay.status == 200 and replay.headers["Idempotent-Replayed"] == "true" and replay.body == done.body
    assert balance(user) == Decimal("1.00")


def test_an_admin_key_is_the_target_users_own(api: Api, admin: Session) -> None:
    one, two = api.sign_in(), api.sign_in()
    for target in (one, two):
        body = {"userId": target.user["id"], "amount": "3", "reason": "welcome", "idempotencyKey": "welcome"}
        reply = admin.call("POST", "/api/balance", body)
        assert reply.status == 200 and "Idempotent-Replayed" not in reply.headers
    assert (balance(one), balance(two)) == (Decimal(3), Decimal(3))


def test_a_refused_adjustment_leaves_its_key_free(admin: Session, user: Session) -> None:
    body = {"userId": user.user["id"], "amount": "-5", "reason": "too much", "idempotencyKey": "retry-later"}
    assert admin.call("POST", "/api/balance", body).status == 402
    credit(user.user["id"], "5")
    assert admin.call("POST", "/api/balance", body).status == 200
    assert balance(user) == Decimal(0)


MONEY_WRITES = ["ledger.py", "holds.py", "payouts.py", "payments.py", "earnings.py"]


@pytest.mark.parametrize("module", MONEY_WRITES)
def test_no_money_module_keeps_its_own_idempotency(module: str) -> None:
    """The claim, the hash and the replay live in echo_control.idempotency alone; a money module only calls it."""
    source = (ROOT / "layers/common/echo_control" / module).read_text()
    tree = ast.parse(source)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
    }
    functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert not names & {"claim_idempotency_key", "store_idempotent_response", "payout_by_key", "settle_hash"}
    assert not [name for name in functions if "hash" in name]


def test_the_migration_keeps_replaying_the_records_made_before_it(database_url: str) -> None:
    """0015 moves what still replays into the scoped records: a call's and a hold's under the API key that made
    them, a settled hold's settle under the hold, a payout's under its user (with the hash the code computes)."""
    from decimal import Decimal

    import psycopg
    from psycopg.types.json import Jsonb
    from yoyo import get_backend, read_migrations

    from echo_control.db.migrations import MIGRATIONS_DIR, _yoyo_url
    from echo_control.idempotency import request_hash
    from echo_control.models import PayoutCreate
    from local_runner import database

    admin = database.with_database(database_url, "postgres")
    name = f"echo_scopes_{uuid.uuid4().hex[:8]}"
    database.create_database(admin, name)
    url = database.with_database(admin, name)
    backend = get_backend(_yoyo_url(url))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations.filter(lambda m: m.id < "0015")))
        user, app, key, tx, hold, settled, payout = (uuid.uuid4() for _ in range(7))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO users (id, email) VALUES (%s, 'old@example.com')", [user])
            conn.execute("INSERT INTO echo_apps (id, name, user_id) VALUES (%s, 'Old', %s)", [app, user])
            conn.execute(
                "INSERT INTO api_keys (id, key_hash, key_prefix, key_last4, user_id, echo_app_id) "
                "VALUES (%s, 'h', 'echo_', 'abcd', %s, %s)",
                [key, user, app],
            )
            conn.execute(
                "INSERT INTO llm_transactions (id, model, input_tokens, output_tokens, total_tokens, cost, status, "
                "user_id, echo_app_id, api_key_id) VALUES (%s, 'gpt-4o', 1, 1, 2, 0.01, 'success', %s, %s, %s)",
                [tx, user, app, key],
            )
            for hold_id, status in ((hold, "active"), (settled, "settled")):
                conn.execute(
                    "INSERT INTO holds (id, user_id, echo_app_id, api_key_id, amount, status, expires_at, closed_at, "
                    "settle_hash, settle_response) VALUES (%s, %s, %s, %s, 0.5, %s, now() + interval '1 hour', "
                    "CASE WHEN %s = 'settled' THEN now() END, CASE WHEN %s = 'settled' THEN 'sh' END, "
                    "CASE WHEN %s = 'settled' THEN '{\"id\": \"settled\"}'::jsonb END)",
                    [hold_id, user, app, key, status, status, status, status],
                )
            for record_key, response in (("call-key", {"id": str(tx)}), ("hold:hold-key", {"id": str(hold)})):
                conn.execute(
                    "INSERT INTO idempotency_keys (user_id, key, request_hash, status_code, response) "
                    "VALUES (%s, %s, 'old-hash', 201, %s)",
                    [user, record_key, Jsonb(response)],
                )
            conn.execute(
                "INSERT INTO payouts (id, user_id, amount, status, stripe_account_id, idempotency_key) "
                "VALUES (%s, %s, 10.50, 'paid', 'acct_x', 'payout-key')",
                [payout, user],
            )
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations))
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT scope_kind, scope_id, key, operation, request_hash, response FROM idempotency_keys ORDER BY key"
            ).fetchall()
        payout_hash = request_hash(PayoutCreate(amount=Decimal("10.5")))
        assert rows == [
            ("api_key", key, "call-key", "record_transaction", "old-hash", {"id": str(tx)}),
            ("api_key", key, "hold-key", "create_hold", "old-hash", {"id": str(hold)}),
            ("user", user, "payout-key", "request_payout", payout_hash, {"id": str(payout)}),
            ("hold", settled, "settle", "settle_hold", "sh", {"id": "settled"}),
        ]
        assert payout_hash == request_hash(PayoutCreate(amount=Decimal("10.50")))
    finally:
        backend.connection.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))
