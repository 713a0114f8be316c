"""Holds: reserve, then settle. available = balance - active holds never goes below zero, whatever runs at once."""

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from conftest import Api, KeyHolder, credit

from echo_control import holds, pricing
from tests.invariants import held_mismatches, statement_mismatches, unreconciled_balances

CALL = {"model": "gpt-4o", "inputTokens": 100, "outputTokens": 50, "cost": "0.30"}


@pytest.fixture(autouse=True)
def consistent() -> Any:
    """After every test: balances reconcile, cached held sums match the holds, the statement's running balance."""
    yield
    assert unreconciled_balances() == []
    assert held_mismatches() == []
    assert statement_mismatches() == []


def funds(holder: KeyHolder) -> dict[str, Decimal]:
    body = holder.session.call("GET", "/api/balance").body
    return {name: Decimal(body[name]) for name in ("balance", "held", "available")}


def hold(holder: KeyHolder, amount: str = "1.00", **fields: Any) -> Any:
    return holder.call("POST", "/api/holds", {"amount": amount, **fields})


def lapse(database_url: str, hold_id: str) -> None:
    """Moves a hold's expiry into the past (what waiting out its ttlSeconds would do)."""
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = %s", [hold_id])


def test_a_hold_reserves_and_a_settle_takes_the_real_cost_and_releases_the_rest(key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "5.00")
    created = hold(key_holder, "2.00", ttlSeconds=60)
    assert created.status == 201, created.body
    assert created.body["status"] == "active" and Decimal(created.body["amount"]) == Decimal("2.00")
    assert Decimal(created.body["available"]) == Decimal("3.00")
    assert funds(key_holder) == {"balance": Decimal("5.00"), "held": Decimal("2.00"), "available": Decimal("3.00")}

    settled = key_holder.call("POST", f"/api/holds/{created.body['id']}/settle", CALL)
    assert settled.status == 201, settled.body
    assert Decimal(settled.body["cost"]) == Decimal("0.30") and settled.body["overrun"] is False
    assert Decimal(settled.body["balance"]) == Decimal("4.70") and Decimal(settled.body["available"]) == Decimal("4.70")
    assert settled.body["holdId"] == created.body["id"]
    assert funds(key_holder) == {"balance": Decimal("4.70"), "held": Decimal("0"), "available": Decimal("4.70")}
    assert key_holder.call("GET", f"/api/holds/{created.body['id']}").body["status"] == "settled"
    history = key_holder.session.call("GET", "/api/transactions").body["transactions"]
    assert [t["id"] for t in history] == [settled.body["id"]]


def test_a_hold_by_model_reserves_the_most_the_call_may_cost_with_the_markup(user: Any) -> None:
    app = user.create_app(markup="1.5")
    holder = KeyHolder(user, app, user.create_key(app["id"])["key"])
    credit(user.user["id"], "10")
    reply = holder.call("POST", "/api/holds", {"model": "gpt-4o", "maxInputTokens": 10_000, "maxOutputTokens": 2_000})
    assert reply.status == 201, reply.body
    expected = pricing.CostSplit.of(
        pricing.provider_cost("gpt-4o", pricing.TokenCounts(input=10_000, output=2_000)), Decimal("1.5")
    ).cost
    assert Decimal(reply.body["amount"]) == expected == Decimal("0.0675")  # (0.025 + 0.020) × 1.5


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"amount": "0"},
        {"amount": "1", "model": "gpt-4o"},
        {"model": "gpt-4o", "maxInputTokens": 10},
        {"amount": "1", "ttlSeconds": 9},
        {"amount": "1", "ttlSeconds": 3601},
        {"amount": "-1"},
        {"model": "no-such-model-anywhere", "maxInputTokens": 1, "maxOutputTokens": 1},
    ],
)
def test_bad_holds_are_4xx_and_reserve_nothing(key_holder: KeyHolder, body: dict) -> None:
    credit(key_holder.session.user["id"], "5.00")
    reply = key_holder.call("POST", "/api/holds", body)
    assert 400 <= reply.status < 500 and reply.status != 402, reply.body
    assert funds(key_holder)["held"] == 0


def test_a_hold_larger_than_what_is_available_is_402_and_reserves_nothing(key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "1.00")
    assert hold(key_holder, "0.60").status == 201
    reply = hold(key_holder, "0.50")
    assert reply.status == 402 and reply.error_code == "insufficient_balance"
    assert Decimal(reply.body["error"]["details"]["available"]) == Decimal("0.40")
    # A call that asks for funds first is refused too: held money is not available.
    assert key_holder.call("POST", "/api/transactions", {**CALL, "cost": "0.41", "requireFunds": True}).status == 402
    assert funds(key_holder) == {"balance": Decimal("1.00"), "held": Decimal("0.60"), "available": Decimal("0.40")}


def test_settle_replays_the_same_body_and_refuses_another(key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "5.00")
    hold_id = hold(key_holder).body["id"]
    first = key_holder.call("POST", f"/api/holds/{hold_id}/settle", CALL)
    again = key_holder.call("POST", f"/api/holds/{hold_id}/settle", CALL)
    assert again.status == 201 and again.body == first.body and again.headers["Idempotent-Replayed"] == "true"
    other = key_holder.call("POST", f"/api/holds/{hold_id}/settle", {**CALL, "cost": "0.31"})
    assert other.status == 409 and other.error_code == "hold_settled"
    assert key_holder.call("DELETE", f"/api/holds/{hold_id}").status == 409
    assert funds(key_holder)["balance"] == Decimal("4.70")


def test_release_frees_the_money_once_and_a_released_hold_cannot_be_settled(key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "5.00")
    hold_id = hold(key_holder, "3.00").body["id"]
    released = key_holder.call("DELETE", f"/api/holds/{hold_id}")
    assert released.status == 200 and released.body == {"id": hold_id, "status": "released"}
    assert key_holder.call("DELETE", f"/api/holds/{hold_id}").body["status"] == "released"
    assert funds(key_holder)["available"] == Decimal("5.00")
    reply = key_holder.call("POST", f"/api/holds/{hold_id}/settle", CALL)
    assert reply.status == 409 and reply.error_code == "hold_released"


def test_an_expired_hold_stops_counting_at_once_and_cannot_be_settled(key_holder: KeyHolder, database_url: str) -> None:
    credit(key_holder.session.user["id"], "1.00")
    hold_id = hold(key_holder, "0.90").body["id"]
    assert funds(key_holder)["available"] == Decimal("0.10")
    lapse(database_url, hold_id)  # no sweep has run
    assert funds(key_holder) == {"balance": Decimal("1.00"), "held": Decimal("0"), "available": Decimal("1.00")}
    assert key_holder.call("GET", f"/api/holds/{hold_id}").body["status"] == "expired"
    reply = key_holder.call("POST", f"/api/holds/{hold_id}/settle", CALL)
    assert reply.status == 409 and reply.error_code == "hold_expired"
    # What it held can be spent before any sweep: a call, then a new hold, take it.
    assert key_holder.call("POST", "/api/transactions", {**CALL, "cost": "0.50"}).status == 201
    assert hold(key_holder, "0.50").status == 201
    assert held_mismatches() == []  # the lapsed hold still counts in the cache, as active, until swept
    assert holds.sweep_lapsed_holds() >= 1
    assert key_holder.call("GET", f"/api/holds/{hold_id}").body["status"] == "expired"
    assert holds.sweep_lapsed_holds() == 0 or held_mismatches() == []  # idempotent
    assert funds(key_holder) == {"balance": Decimal("0.50"), "held": Decimal("0.50"), "available": Decimal("0")}


def test_a_settle_above_the_hold_records_the_call_and_the_rest_is_debt(key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "2.00")
    small = hold(key_holder, "0.50").body["id"]
    other = hold(key_holder, "1.00").body["id"]  # stays held
    settled = key_holder.call("POST", f"/api/holds/{small}/settle", {**CALL, "cost": "5.00"})
    assert settled.status == 201, settled.body
    assert settled.body["overrun"] is True
    assert Decimal(settled.body["cost"]) == Decimal("5.00")  # the call happened: all of it is recorded
    # its own 0.50 and the 0.50 that was available covered it; the rest is owed
    assert Decimal(settled.body["shortfall"]) == Decimal("4.00")
    assert funds(key_holder) == {"balance": Decimal("-3.00"), "held": Decimal("1.00"), "available": Decimal("-4.00")}
    assert key_holder.call("GET", f"/api/holds/{other}").body["status"] == "active"


def test_a_hold_is_its_users_and_apps_another_key_gets_404(key_holder: KeyHolder, other_user: Any) -> None:
    credit(key_holder.session.user["id"], "5.00")
    hold_id = hold(key_holder).body["id"]
    app = other_user.create_app()
    stranger = KeyHolder(other_user, app, other_user.create_key(app["id"])["key"])
    for method, path, body in [
        ("GET", f"/api/holds/{hold_id}", None),
        ("DELETE", f"/api/holds/{hold_id}", None),
        ("POST", f"/api/holds/{hold_id}/settle", CALL),
    ]:
        assert stranger.call(method, path, body).status == 404
    assert key_holder.call("GET", "/api/holds/not-a-uuid").status == 404
    assert funds(key_holder)["held"] == Decimal("1.00")


def test_a_hold_with_an_idempotency_key_reserves_once(key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "5.00")
    headers = {"Idempotency-Key": f"hold-{uuid.uuid4()}"}
    first = key_holder.call("POST", "/api/holds", {"amount": "1.00"}, headers=headers)
    again = key_holder.call("POST", "/api/holds", {"amount": "1.00"}, headers=headers)
    assert again.body == first.body and again.headers["Idempotent-Replayed"] == "true"
    assert key_holder.call("POST", "/api/holds", {"amount": "2.00"}, headers=headers).status == 409
    assert funds(key_holder)["held"] == Decimal("1.00")


def test_200_concurrent_holds_on_a_balance_that_covers_85_reserve_exactly_85(api: Api, key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "0.85")

    def reserve(_: int) -> int:
        return Api(api.client.application).call("POST", "/api/holds", key_holder.key, {"amount": "0.01"}).status

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(reserve, range(200)))
    assert statuses.count(201) == 85 and statuses.count(402) == 115, sorted(set(statuses))
    assert funds(key_holder) == {"balance": Decimal("0.85"), "held": Decimal("0.85"), "available": Decimal("0")}


def test_holds_settles_releases_and_calls_at_once_never_take_available_below_zero(
    api: Api, key_holder: KeyHolder
) -> None:
    credit(key_holder.session.user["id"], "3.00")
    client = Api(api.client.application)

    def work(n: int) -> list[int]:
        made = client.call("POST", "/api/holds", key_holder.key, {"amount": "0.20"})
        statuses = [made.status]
        if n % 3 == 0:
            statuses.append(client.call("POST", "/api/transactions", key_holder.key, {**CALL, "cost": "0.05"}).status)
        if made.status != 201:
            return statuses
        path = f"/api/holds/{made.body['id']}"
        if n % 2:  # may overrun
            statuses.append(client.call("POST", f"{path}/settle", key_holder.key, {**CALL, "cost": "0.25"}).status)
        else:
            statuses.append(client.call("DELETE", path, key_holder.key).status)
        return statuses

    with ThreadPoolExecutor(max_workers=24) as pool:
        seen = {status for statuses in pool.map(work, range(120)) for status in statuses}
    assert seen <= {200, 201, 402}, seen
    shown = funds(key_holder)
    # only recorded calls (and overrunning settles) take the balance below zero, by exactly what they cost
    spent = Decimal(key_holder.session.call("GET", "/api/balance").body["totalSpent"])
    assert shown["balance"] == Decimal("3.00") - spent and shown["held"] == 0


def test_settles_racing_expiry_each_resolve_one_way_once(api: Api, key_holder: KeyHolder, database_url: str) -> None:
    credit(key_holder.session.user["id"], "5.00")
    ids = [hold(key_holder, "0.10", ttlSeconds=10).body["id"] for _ in range(30)]
    with psycopg.connect(database_url) as conn:  # all of them lapse 300 ms from now, while the settles run
        conn.execute(
            "UPDATE holds SET expires_at = now() + interval '300 milliseconds' WHERE id = ANY(%s::uuid[])", [ids]
        )
    client = Api(api.client.application)

    def settle(hold_id: str) -> int:
        time.sleep(0.01 * (ids.index(hold_id) % 30))
        return client.call("POST", f"/api/holds/{hold_id}/settle", key_holder.key, {**CALL, "cost": "0.05"}).status

    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = dict(zip(ids, pool.map(settle, ids), strict=True))
    time.sleep(0.35)
    assert set(statuses.values()) <= {201, 409}
    settled = [i for i, status in statuses.items() if status == 201]
    for hold_id, status in statuses.items():
        shown = key_holder.call("GET", f"/api/holds/{hold_id}").body["status"]
        assert shown == ("settled" if status == 201 else "expired")
    assert funds(key_holder) == {
        "balance": Decimal("5.00") - Decimal("0.05") * len(settled),
        "held": Decimal("0"),
        "available": Decimal("5.00") - Decimal("0.05") * len(settled),
    }


def test_a_connection_killed_mid_settle_leaves_nothing_half_applied(
    api: Api, key_holder: KeyHolder, database_url: str
) -> None:
    user_id = key_holder.session.user["id"]
    credit(user_id, "1.00")
    hold_id = hold(key_holder, "0.50").body["id"]
    result: dict = {}
    with psycopg.connect(database_url) as blocker, psycopg.connect(database_url, autocommit=True) as killer:
        blocker.execute("SELECT 1 FROM balances WHERE user_id = %s FOR UPDATE", [user_id])
        worker = threading.Thread(
            target=lambda: result.update(
                reply=Api(api.client.application).call("POST", f"/api/holds/{hold_id}/settle", key_holder.key, CALL)
            )
        )
        worker.start()
        pid = None
        for _ in range(200):
            row = killer.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                ["WITH target AS%"],
            ).fetchone()
            if row:
                pid = row[0]
                break
            time.sleep(0.02)
        assert pid is not None, "the settle never reached the balance row"
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])
        worker.join(timeout=10)
        blocker.rollback()
    assert result["reply"].status == 503
    assert funds(key_holder) == {"balance": Decimal("1.00"), "held": Decimal("0.50"), "available": Decimal("0.50")}
    assert key_holder.call("GET", f"/api/holds/{hold_id}").body["status"] == "active"
    retried = [key_holder.call("POST", f"/api/holds/{hold_id}/settle", CALL) for _ in range(2)]
    assert [r.status for r in retried] == [201, 201] and retried[0].body == retried[1].body
    assert funds(key_holder) == {"balance": Decimal("0.70"), "held": Decimal("0"), "available": Decimal("0.70")}


def test_balance_and_validate_answer_available_and_held(api: Api, key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "2.00")
    hold(key_holder, "0.75")
    by_key = key_holder.call("GET", "/api/balance").body
    checked = api.call("POST", "/api/validate-api-key", json_body={"apiKey": key_holder.key}).body
    for shown in (by_key, checked):
        assert (Decimal(shown["held"]), Decimal(shown["available"])) == (Decimal("0.75"), Decimal("1.25"))


def test_an_admin_cannot_debit_money_that_is_held(admin: Any, key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "1.00")
    hold(key_holder, "0.80")
    body = {"userId": key_holder.session.user["id"], "amount": "-0.50", "reason": "test"}
    reply = admin.call("POST", "/api/balance", body)
    assert reply.status == 402
    assert admin.call("POST", "/api/balance", {**body, "amount": "-0.20"}).status == 200
    assert funds(key_holder) == {"balance": Decimal("0.80"), "held": Decimal("0.80"), "available": Decimal("0")}
