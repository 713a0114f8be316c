"""Housekeeping: old Idempotency-Key records purged, unpayable pending payments expired, expired rows cleared;
every run bounded by its batch limit, a second run a no-op, concurrent runs and webhooks never doubled or undone."""

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import Api, KeyHolder, Session, credit
from psycopg.rows import dict_row
from pydantic import ValidationError

from echo_control import db, housekeeping, payments
from local_runner.lambdas import LambdaContext, load_handler
from tests.invariants import unreconciled_balances

ROOT = Path(__file__).resolve().parent.parent
CALL = {"model": "gpt-4o", "inputTokens": 100, "outputTokens": 50, "cost": "0.01"}
SWEPT = (
    "idempotencyKeysPurged",
    "paymentsExpired",
    "pageFlashesPurged",
    "holdsExpired",
    "grantsExpired",
    "earningsFolded",
    "rateLimitWindowsPurged",
    "webhookEventsPurged",
    "oauthSecretsPurged",
)
NOTHING = dict.fromkeys(SWEPT, 0)


@pytest.fixture(autouse=True)
def clean_slate() -> Iterator[None]:
    """Each test starts with nothing left to sweep (other tests' rows are never old), and ends reconciled."""
    drain()
    yield
    assert unreconciled_balances() == []


def drain() -> None:
    while not housekeeping.run_housekeeping()["complete"]:
        pass


def counts(result: dict[str, Any]) -> dict[str, int]:
    return {name: result[name] for name in SWEPT}


def execute(sql: str, params: Any = None) -> list[dict[str, Any]]:
    with db.transaction() as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def age_idempotency_key(user_id: str, key: str, hours: float) -> None:
    execute(
        "UPDATE idempotency_keys i SET created_at = now() - make_interval(secs => %s) FROM api_keys k "
        "WHERE i.scope_kind = 'api_key' AND k.id = i.scope_id AND k.user_id = %s AND i.key = %s",
        [hours * 3600, user_id, key],
    )


def age_payment(payment_id: str, hours: float) -> None:
    execute(
        "UPDATE payments SET created_at = now() - make_interval(secs => %s) WHERE id = %s", [hours * 3600, payment_id]
    )


def statuses(session: Session) -> dict[str, str]:
    return {p["id"]: p["status"] for p in session.call("GET", "/api/payments").body["payments"]}


def payment_link(session: Session, amount: str = "20") -> dict[str, Any]:
    reply = session.call("POST", "/api/stripe/payment-link", {"amount": amount})
    assert reply.status == 201, reply.body
    return reply.body


def webhook_event(kind: str, link: dict[str, Any], user_id: str, **fields: Any) -> str:
    session = {
        "id": link["sessionId"],
        "object": "checkout.session",
        "payment_status": "paid",
        "amount_total": link["paymentLink"]["amount"],
        "currency": "usd",
        "metadata": {"paymentId": link["paymentId"], "userId": user_id},
        "payment_intent": f"pi_{uuid.uuid4().hex[:16]}",
        **fields,
    }
    event = {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": kind, "data": {"object": session}}
    return json.dumps(event)


def deliver(api: Api, payload: str) -> None:
    signature = payments.sign_payload(payload, "whsec_echo_local_development_only")
    reply = api.call(
        "POST",
        "/api/stripe/webhook",
        data=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
    )
    assert reply.status == 200, reply.body


def balance(session: Session) -> Decimal:
    return Decimal(session.call("GET", "/api/balance").body["balance"])


# --- idempotency keys ----------------------------------------------------------------------------------


def test_idempotency_keys_older_than_a_day_are_purged_and_fresher_ones_still_replay(key_holder: KeyHolder) -> None:
    user_id = key_holder.session.user["id"]
    credit(user_id, "1.00")
    for key in ("day-old", "almost-a-day-old"):
        assert key_holder.call("POST", "/api/transactions", CALL, headers={"Idempotency-Key": key}).status == 201
    age_idempotency_key(user_id, "day-old", 24 + 1 / 60)
    age_idempotency_key(user_id, "almost-a-day-old", 24 - 1 / 60)

    assert counts(housekeeping.run_housekeeping()) == {**NOTHING, "idempotencyKeysPurged": 1}

    other = {**CALL, "cost": "0.02"}
    # the purged key is free again: a new request under it is a new call, not a 409
    fresh = key_holder.call("POST", "/api/transactions", other, headers={"Idempotency-Key": "day-old"})
    assert fresh.status == 201 and "Idempotent-Replayed" not in fresh.headers
    # the key younger than a day still guards its first request
    reused = key_holder.call("POST", "/api/transactions", other, headers={"Idempotency-Key": "almost-a-day-old"})
    assert reused.status == 409 and reused.error_code == "idempotency_key_reused"
    assert balance(key_holder.session) == Decimal("0.96")


# --- pending payments ----------------------------------------------------------------------------------


def test_only_pending_payments_no_checkout_can_pay_expire(api: Api, user: Session) -> None:
    user_id = user.user["id"]
    unpayable, fresh, within_grace, paid, awaiting_debit = (payment_link(user) for _ in range(5))
    deliver(api, webhook_event("checkout.session.completed", paid, user_id))
    # a delayed method (a bank debit): the session completed unpaid, the money may still come
    deliver(api, webhook_event("checkout.session.completed", awaiting_debit, user_id, payment_status="unpaid"))
    for link, hours in ((unpayable, 25.1), (fresh, 1), (within_grace, 24.5), (paid, 48), (awaiting_debit, 48)):
        age_payment(link["paymentId"], hours)

    assert counts(housekeeping.run_housekeeping()) == {**NOTHING, "paymentsExpired": 1}

    assert statuses(user) == {
        unpayable["paymentId"]: "expired",
        fresh["paymentId"]: "pending",
        within_grace["paymentId"]: "pending",
        paid["paymentId"]: "completed",
        awaiting_debit["paymentId"]: "pending",
    }
    assert balance(user) == Decimal("20")
    # the debit comes through two days later: credited, housekeeping or not
    deliver(api, webhook_event("checkout.session.async_payment_succeeded", awaiting_debit, user_id))
    assert statuses(user)[awaiting_debit["paymentId"]] == "completed"
    assert balance(user) == Decimal("40")


def test_a_payment_expired_by_housekeeping_that_stripe_then_reports_paid_is_credited(api: Api, user: Session) -> None:
    link = payment_link(user)
    age_payment(link["paymentId"], 26)
    assert housekeeping.run_housekeeping()["paymentsExpired"] == 1
    assert statuses(user) == {link["paymentId"]: "expired"}

    deliver(api, webhook_event("checkout.session.completed", link, user.user["id"]))

    assert statuses(user) == {link["paymentId"]: "completed"}
    assert balance(user) == Decimal("20")


def test_a_payment_a_webhook_is_completing_is_skipped_and_then_left_completed(user: Session, database_url: str) -> None:
    link = payment_link(user)
    age_payment(link["paymentId"], 26)
    payment_id = uuid.UUID(link["paymentId"])
    # Given the webhook's transaction holding the payment (lock_payment, as handle_webhook takes it)
    with psycopg.connect(database_url, row_factory=dict_row) as webhook:
        locked = db.lock_payment(webhook, payment_id=payment_id, session_id=None, payment_intent=None)
        assert locked is not None and locked["status"] == "pending"
        # When housekeeping runs meanwhile, Then it neither waits for the lock nor expires the payment
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            during = pool.submit(housekeeping.run_housekeeping).result(timeout=10)
        finally:
            pool.shutdown(wait=False)  # a run stuck on the lock ends when this transaction does
        assert during["paymentsExpired"] == 0
        db.update_payment(webhook, payment_id, status="completed", stripe_payment_id="pi_paid", amount_refunded=0)
    # and once the webhook has committed, the paid payment is no longer pending: nothing to expire
    assert housekeeping.run_housekeeping()["paymentsExpired"] == 0
    assert statuses(user) == {link["paymentId"]: "completed"}


# --- expired page flashes and finished rate-limit windows ----------------------------------------------


def test_expired_flashes_and_finished_rate_limit_windows_are_cleared() -> None:
    expired, live, key_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    execute(
        "INSERT INTO page_flashes (id, ciphertext, expires_at) VALUES "
        "(%s, 'x', now() - interval '1 second'), (%s, 'y', now() + interval '5 minutes')",
        [expired, live],
    )
    execute(
        "INSERT INTO rate_limit_windows (api_key_id, window_start, hits) VALUES "
        "(%(key)s, date_trunc('minute', now()) - interval '2 minutes', 3), (%(key)s, date_trunc('minute', now()), 1)",
        {"key": key_id},
    )
    result = counts(housekeeping.run_housekeeping())
    assert result["pageFlashesPurged"] == 1
    assert result["rateLimitWindowsPurged"] in (1, 2)  # 2 when the minute turned between the insert and the run
    assert [r["id"] for r in execute("SELECT id FROM page_flashes WHERE id IN (%s, %s)", [expired, live])] == [live]
    remaining = execute("SELECT hits FROM rate_limit_windows WHERE api_key_id = %s", [key_id])
    assert remaining in ([{"hits": 1}], [])


# --- bounded, idempotent, concurrent ---------------------------------------------------------------------


def add_old_rows(user_id: str, keys: int, pending_payments: int) -> None:
    execute(
        "INSERT INTO idempotency_keys (scope_kind, scope_id, key, operation, request_hash, created_at) "
        "SELECT 'user', %s, 'old-' || n, 'record_transaction', 'h', "
        "now() - interval '30 hours' - make_interval(secs => n) "
        "FROM generate_series(1, %s) n",
        [user_id, keys],
    )
    execute(
        "INSERT INTO payments (user_id, amount, status, created_at) "
        "SELECT %s, 500, 'pending', now() - interval '30 hours' FROM generate_series(1, %s)",
        [user_id, pending_payments],
    )


def test_holds_past_their_time_are_expired_in_bounded_runs_and_leave_the_held_sums(key_holder: KeyHolder) -> None:
    from tests.invariants import held_mismatches

    credit(key_holder.session.user["id"], "5.00")
    made = [key_holder.call("POST", "/api/holds", {"amount": "0.10"}).body["id"] for _ in range(7)]
    execute("UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = ANY(%s::uuid[])", [made[:5]])
    first = housekeeping.run_housekeeping(batch_limit=3)
    assert first["holdsExpired"] == 3 and first["complete"] is False
    assert housekeeping.run_housekeeping(batch_limit=3)["holdsExpired"] == 2
    assert housekeeping.run_housekeeping(batch_limit=3)["holdsExpired"] == 0
    statuses = {key_holder.call("GET", f"/api/holds/{h}").body["status"] for h in made[:5]}
    assert statuses == {"expired"}
    shown = key_holder.session.call("GET", "/api/balance").body
    assert (Decimal(shown["held"]), Decimal(shown["available"])) == (Decimal("0.20"), Decimal("4.80"))
    assert held_mismatches() == []


def test_each_run_settles_at_most_the_batch_limit_and_the_rest_waits_for_the_next(user: Session) -> None:
    add_old_rows(user.user["id"], keys=25, pending_payments=12)
    runs = []
    for _ in range(4):
        result = housekeeping.run_housekeeping(batch_limit=10)
        runs.append((result["idempotencyKeysPurged"], result["paymentsExpired"], result["complete"]))
    assert runs == [(10, 10, False), (10, 2, False), (5, 0, True), (0, 0, True)]
    # the oldest go first
    assert execute("SELECT count(*) AS n FROM idempotency_keys WHERE key LIKE 'old-%%'") == [{"n": 0}]


def test_the_batch_limit_is_a_setting_the_function_reads(user: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    add_old_rows(user.user["id"], keys=7, pending_payments=0)
    monkeypatch.setenv("ECHO_HOUSEKEEPING_BATCH_LIMIT", "3")
    handler = load_handler(ROOT / "functions" / "run_housekeeping")
    event = json.loads((ROOT / "events" / "run_housekeeping.json").read_text())
    results = [handler(event, LambdaContext("run_housekeeping")) for _ in range(4)]
    assert [r["idempotencyKeysPurged"] for r in results] == [3, 3, 1, 0]
    assert {r["batchLimit"] for r in results} == {3}


@pytest.mark.parametrize("value", ["0", "-1", "many", "1000001"])
def test_a_wrong_batch_limit_stops_the_start(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from echo_control import config

    monkeypatch.setenv("ECHO_HOUSEKEEPING_BATCH_LIMIT", value)
    with pytest.raises(config.InvalidConfiguration, match="ECHO_HOUSEKEEPING_BATCH_LIMIT"):
        load_handler(ROOT / "functions" / "run_housekeeping")


def test_a_second_run_changes_nothing(user: Session) -> None:
    add_old_rows(user.user["id"], keys=3, pending_payments=3)
    assert counts(housekeeping.run_housekeeping()) == {**NOTHING, "idempotencyKeysPurged": 3, "paymentsExpired": 3}
    before = execute("SELECT id, status, updated_at FROM payments WHERE user_id = %s ORDER BY id", [user.user["id"]])
    time.sleep(0.01)
    second = housekeeping.run_housekeeping()
    assert counts(second) == NOTHING and second["complete"] is True
    after = execute("SELECT id, status, updated_at FROM payments WHERE user_id = %s ORDER BY id", [user.user["id"]])
    assert after == before


def test_concurrent_runs_take_different_rows(user: Session) -> None:
    add_old_rows(user.user["id"], keys=60, pending_payments=60)
    # each thread is a container of its own, with its own connection
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: housekeeping.run_housekeeping(batch_limit=25), range(4)))
    assert sum(r["idempotencyKeysPurged"] for r in results) == 60
    assert sum(r["paymentsExpired"] for r in results) == 60
    assert all(r["idempotencyKeysPurged"] <= 25 and r["paymentsExpired"] <= 25 for r in results)
    assert execute(
        "SELECT count(*) AS n FROM payments WHERE user_id = %s AND status = 'expired'", [user.user["id"]]
    ) == [{"n": 60}]


def test_a_failing_sweep_is_reported_and_the_others_still_run(user: Session) -> None:
    add_old_rows(user.user["id"], keys=2, pending_payments=1)

    def broken(limit: int) -> int:
        raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")

    sweeps = (housekeeping.Sweep("brokenSweep", "BrokenSweep", broken), *housekeeping.SWEEPS)
    with pytest.raises(housekeeping.HousekeepingFailed, match="brokenSweep"):
        housekeeping.run_housekeeping(sweeps=sweeps)
    assert counts(housekeeping.run_housekeeping()) == NOTHING  # the others did their work in the failed run


# --- the function ----------------------------------------------------------------------------------------


def test_the_function_runs_its_scheduled_event_and_refuses_anything_else() -> None:
    handler = load_handler(ROOT / "functions" / "run_housekeeping")
    event = json.loads((ROOT / "events" / "run_housekeeping.json").read_text())
    assert handler(event, LambdaContext("run_housekeeping")) == {**NOTHING, "batchLimit": 5000, "complete": True}
    for wrong in ({}, {**event, "source": "aws.s3"}, {**event, "time": "yesterday"}):
        with pytest.raises(ValidationError):
            handler(wrong, LambdaContext("run_housekeeping"))


def test_the_schedule_is_every_15_minutes_and_no_route() -> None:
    import yaml

    from local_runner import template

    doc = yaml.load((ROOT / "template.yaml").read_text(), Loader=template._CfnLoader)  # noqa: S506 - SafeLoader
    events = doc["Resources"]["RunHousekeepingFunction"]["Properties"]["Events"]
    assert [(e["Type"], e["Properties"]["Schedule"]) for e in events.values()] == [("Schedule", "rate(15 minutes)")]
    assert "RunHousekeepingFunction" not in {route.function for route in template.load().routes}
