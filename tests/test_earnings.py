"""The owners' earnings: each debit credits its app's owner with its markup in the same database transaction, so that
every call's cost = providerCost + the owner's earnings from it, to the micro-dollar, under any concurrency; the
earnings endpoints answer from the rollups; a user's refund never claws back what an owner earned."""

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg
import pytest
from conftest import Api, Session, credit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from echo_control import config, housekeeping, payments
from tests.invariants import (
    closed_earnings_mismatches,
    markup_not_earned,
    rollup_mismatches,
    unreconciled_balances,
    unreconciled_earnings,
)

MICRO = Decimal("0.000001")


@pytest.fixture(autouse=True)
def reconciled() -> Any:
    """After every test here: balances, earnings and rollups agree with their ledgers, table-wide."""
    yield
    assert unreconciled_balances() == []
    assert (bad := unreconciled_earnings()) == [], str(bad[:1])
    assert markup_not_earned() == []
    assert rollup_mismatches() == []
    assert closed_earnings_mismatches() == []


def earnings_of(session: Session) -> dict[str, Any]:
    reply = session.call("GET", "/api/earnings")
    assert reply.status == 200, reply.body
    return reply.body


def customer_of(api: Api, app: dict[str, Any], amount: str = "100") -> tuple[Session, str]:
    customer = api.sign_in()
    key = customer.create_key(app["id"])["key"]
    credit(customer.user["id"], amount)
    return customer, key


def call(api: Api, key: str, cost: str, model: str = "gpt-4o") -> dict[str, Any]:
    reply = api.call(
        "POST", "/api/transactions", key, {"model": model, "inputTokens": 10, "outputTokens": 5, "cost": cost}
    )
    assert reply.status == 201, reply.body
    return reply.body


def test_a_customers_call_earns_the_owner_its_markup(api: Api, user: Session) -> None:
    app = user.create_app("Earner", markup="1.25", acceptsCustomers=True)
    customer, key = customer_of(api, app)
    assert earnings_of(user) == {
        "clearing": "0.000000",
        "available": "0.000000",
        "pending": "0.000000",
        "paidOut": "0.000000",
        "lifetime": "0.000000",
        "reversed": "0.000000",
        "payoutsEnabled": False,
        "minimumPayout": "10",
        "apps": [{"echoAppId": app["id"], "name": "Earner", "lifetime": "0.000000", "last30Days": "0.000000"}],
    }
    recorded = call(api, key, "0.033333")
    # 0.033333 × 0.25 = 0.00833325, half-up to 0.008333; cost 0.041666
    assert (recorded["providerCost"], recorded["markupAmount"], recorded["cost"]) == (
        "0.033333",
        "0.008333",
        "0.041666",
    )
    call(api, key, "1", model="claude-3-5-haiku")
    earned = earnings_of(user)
    assert earned["available"] == earned["lifetime"] == "0.258333"
    assert earned["apps"][0]["lifetime"] == earned["apps"][0]["last30Days"] == "0.258333"
    assert earnings_of(customer)["lifetime"] == "0.000000"  # the customer paid, and earned nothing

    by_app = user.call("GET", f"/api/echo-apps/{app['id']}/earnings")
    assert by_app.status == 200
    today = datetime.now(UTC).date().isoformat()
    assert by_app.body["lifetime"] == by_app.body["total"] == "0.258333"
    assert by_app.body["byDay"] == [{"day": today, "amount": "0.258333", "calls": 2}]
    assert by_app.body["byModel"] == [
        {"model": "claude-3-5-haiku", "amount": "0.250000", "calls": 1},
        {"model": "gpt-4o", "amount": "0.008333", "calls": 1},
    ]
    assert (by_app.body["since"], by_app.body["until"]) == (
        (datetime.now(UTC) - timedelta(days=29)).date().isoformat(),
        today,
    )


def test_calls_without_markup_and_refused_calls_earn_nothing(api: Api, user: Session, database_url: str) -> None:
    plain = user.create_app("At cost", acceptsCustomers=True)  # markup 1
    marked = user.create_app("Marked", markup="2", acceptsCustomers=True)
    _, plain_key = customer_of(api, plain)
    call(api, plain_key, "0.5")
    _, poor_key = customer_of(api, marked, amount="0.01")
    refused = api.call(
        "POST",
        "/api/transactions",
        poor_key,
        {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "cost": "1", "requireFunds": True},
    )
    assert refused.status == 402
    assert earnings_of(user)["lifetime"] == "0.000000"
    with psycopg.connect(database_url) as conn:
        entries = conn.execute(
            "SELECT count(*) FROM earning_entries e JOIN echo_apps a ON a.id = e.echo_app_id WHERE a.user_id = %s",
            [user.user["id"]],
        ).fetchone()
    assert entries == (0,)


def test_the_part_of_a_call_paid_by_debt_earns_nothing_until_repaid_in_cash(api: Api, user: Session) -> None:
    marked = user.create_app("Marked", markup="2", acceptsCustomers=True)
    customer, key = customer_of(api, marked, amount="0.5")
    recorded = api.call(
        "POST", "/api/transactions", key, {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "cost": "1"}
    )
    # cost 2 (markup 1): the 0.50 of cash paid a quarter of it, so a quarter of the markup is earned; 1.50 is owed
    assert recorded.status == 201 and recorded.body["shortfall"] == "1.500000"
    assert recorded.body["earnedAmount"] == "0.250000"
    assert earnings_of(user)["lifetime"] == "0.250000"
    credit(customer.user["id"], "1")  # repays 1.00 of the 1.50 owed, in cash: two thirds of the deferred 0.75
    assert earnings_of(user)["lifetime"] == "0.750000"
    credit(customer.user["id"], "1")
    assert earnings_of(user)["lifetime"] == "1.000000"
    assert customer.call("GET", "/api/balance").body["balance"] == "0.500000"


def test_an_owners_own_calls_carry_no_markup(api: Api, user: Session) -> None:
    app = user.create_app("Own", markup="3", acceptsCustomers=True)
    key = user.create_key(app["id"])["key"]
    credit(user.user["id"], "1")
    recorded = call(api, key, "0.1")
    assert (recorded["markupAmount"], recorded["cost"], recorded["earnedAmount"]) == (
        "0.000000",
        "0.100000",
        "0.000000",
    )
    assert earnings_of(user)["lifetime"] == "0.000000"
    assert user.call("GET", "/api/balance").body["balance"] == "0.900000"
    _, customer_key = customer_of(api, app)  # a customer of the same app pays it
    assert call(api, customer_key, "0.1")["markupAmount"] == "0.200000"


def test_earnings_clear_after_the_clearing_days_and_payouts_take_only_cleared(
    api: Api, user: Session, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECHO_EARNINGS_CLEARING_DAYS", "7")
    app = user.create_app("Clearing", markup="2", acceptsCustomers=True)
    _, key = customer_of(api, app)
    recorded = call(api, key, "1")
    shown = earnings_of(user)
    assert (shown["clearing"], shown["available"], shown["lifetime"]) == ("1.000000", "0.000000", "1.000000")
    housekeeping.run_housekeeping()  # folded into the account: the same figures
    assert earnings_of(user) == shown
    with psycopg.connect(database_url, autocommit=True) as conn:  # seven days pass for that entry
        conn.execute("ALTER TABLE earning_entries DISABLE TRIGGER earning_entries_no_update_or_delete")
        conn.execute(
            "UPDATE earning_entries SET clears_at = now() - interval '1 second' WHERE reference_id = %s",
            [recorded["id"]],
        )
        conn.execute("ALTER TABLE earning_entries ENABLE TRIGGER earning_entries_no_update_or_delete")
    cleared = earnings_of(user)
    assert (cleared["clearing"], cleared["available"]) == ("0.000000", "1.000000")  # before any sweep, exactly
    housekeeping.run_housekeeping()
    assert earnings_of(user) == cleared


def test_earnings_are_the_owners_only(api: Api, user: Session, other_user: Session) -> None:
    app = user.create_app("Mine", markup="2", acceptsCustomers=True)
    other_user.create_key(app["id"])
    for target in (app["id"], str(uuid.uuid4()), "nope"):
        assert other_user.call("GET", f"/api/echo-apps/{target}/earnings").status == 404
    assert earnings_of(other_user)["apps"] == []
    key = other_user.create_key(app["id"])["key"]
    assert api.call("GET", "/api/earnings", key).status == 403  # a key is not a session
    assert (
        user.call(
            "GET", f"/api/echo-apps/{app['id']}/earnings", query={"from": "2027-02-01", "to": "2027-01-01"}
        ).status
        == 400
    )


def test_a_storm_of_concurrent_calls_reconciles_to_the_micro_dollar(api: Api, user: Session, database_url: str) -> None:
    """Customers of two of one owner's apps (one hot row: the owner's account) and an app of another owner, 32
    threads; afterwards every sum agrees: each call's cost = its provider cost + its owner's earning from it."""
    other_owner = api.sign_in()
    apps = [
        user.create_app("Storm A", markup="1.3333", acceptsCustomers=True),
        user.create_app("Storm B", markup="2.5", acceptsCustomers=True),
        other_owner.create_app("Storm C", markup="1.07", acceptsCustomers=True),
    ]
    keys = [customer_of(api, app, amount="3")[1] for app in apps for _ in range(4)]
    costs = ["0.000001", "0.000003", "0.012345", "0.333333", "0.1", "0.000007"]
    barrier = threading.Barrier(32)

    def debit(i: int) -> dict[str, Any]:
        if i < 32:
            barrier.wait(timeout=10)
        body = {
            "model": "gpt-4o",
            "inputTokens": 1,
            "outputTokens": 1,
            "cost": costs[i % len(costs)],
            "requireFunds": True,  # every recorded call paid in full, in cash: each earns all its markup
        }
        reply = Api(api.client.application).call("POST", "/api/transactions", keys[i % len(keys)], body)
        return {"status": reply.status, "body": reply.body}

    with ThreadPoolExecutor(max_workers=32) as pool:
        replies = list(pool.map(debit, range(600)))
    recorded = [r["body"] for r in replies if r["status"] == 201]
    assert {r["status"] for r in replies} <= {201, 402} and len(recorded) > 300
    for body in recorded:
        assert Decimal(body["providerCost"]) + Decimal(body["markupAmount"]) == Decimal(body["cost"])
    expected = {user.user["id"]: Decimal(0), other_owner.user["id"]: Decimal(0)}
    owner_of = {app["id"]: app["userId"] for app in apps}
    for body in recorded:
        expected[owner_of[body["echoAppId"]]] += Decimal(body["markupAmount"])
    assert Decimal(earnings_of(user)["lifetime"]) == expected[user.user["id"]]
    assert Decimal(earnings_of(other_owner)["available"]) == expected[other_owner.user["id"]]
    per_app = {a["echoAppId"]: Decimal(a["lifetime"]) for a in earnings_of(user)["apps"]}
    for app in apps[:2]:
        assert per_app[app["id"]] == sum(
            (Decimal(b["markupAmount"]) for b in recorded if b["echoAppId"] == app["id"]), Decimal(0)
        )


markups = st.decimals(min_value=1, max_value=100, places=4)
provider_costs = st.integers(min_value=0, max_value=20_000_000).map(lambda micros: Decimal(micros) * MICRO)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(markup=markups, costs=st.lists(provider_costs, min_size=1, max_size=4))
def test_every_debit_costs_its_provider_cost_plus_the_owners_earning(
    api: Api, markup: Decimal, costs: list[Decimal]
) -> None:
    """For any markup and provider costs: markupAmount = providerCost × (markup − 1) rounded half-up to 6 places, the
    customer pays providerCost + markupAmount, and the owner's earnings grow by exactly markupAmount."""
    owner = api.sign_in()
    app = owner.create_app("Property", markup=str(markup), acceptsCustomers=True)
    customer, key = customer_of(api, app, amount="1000000")
    paid = Decimal(0)
    earned = Decimal(0)
    for provider_cost in costs:
        body = call(api, key, str(provider_cost))
        markup_amount = (provider_cost * (Decimal(app["markup"]) - 1)).quantize(MICRO, rounding=ROUND_HALF_UP)
        assert Decimal(body["providerCost"]) == provider_cost
        assert Decimal(body["markupAmount"]) == markup_amount
        assert Decimal(body["cost"]) == provider_cost + markup_amount
        paid += Decimal(body["cost"])
        earned += markup_amount
        assert Decimal(earnings_of(owner)["available"]) == earned
    assert Decimal(customer.call("GET", "/api/balance").body["totalSpent"]) == paid
    assert Decimal(earnings_of(owner)["lifetime"]) == paid - sum(costs, Decimal(0))


def sign(event: dict[str, Any]) -> tuple[str, dict[str, str]]:
    payload = json.dumps(event)
    return payload, {"Stripe-Signature": payments.sign_payload(payload, config.stripe_credentials().webhook_secret)}


def test_a_refund_reverses_exactly_what_its_spent_credits_earned_the_owner(api: Api, user: Session) -> None:
    """A refund takes back the unspent credits, and the earnings its spent credits paid: only money that stayed
    may be paid out."""
    app = user.create_app("Refunded", markup="2", acceptsCustomers=True)
    customer = api.sign_in()
    key = customer.create_key(app["id"])["key"]
    link = customer.call("POST", "/api/stripe/payment-link", {"amount": "10"}).body
    session = {
        "id": link["sessionId"],
        "object": "checkout.session",
        "payment_status": "paid",
        "metadata": {"paymentId": link["paymentId"]},
        "payment_intent": f"pi_{uuid.uuid4().hex}",
    }
    payload, headers = sign(
        {"id": f"evt_{uuid.uuid4().hex}", "type": "checkout.session.completed", "data": {"object": session}}
    )
    assert api.call("POST", "/api/stripe/webhook", data=payload, headers=headers).status == 200
    call(api, key, "3")  # costs 6: 3 to the provider, 3 to the owner
    charge = {
        "object": "charge",
        "payment_intent": session["payment_intent"],
        "amount_refunded": 1000,
        "metadata": {"paymentId": link["paymentId"]},
    }
    payload, headers = sign({"id": f"evt_{uuid.uuid4().hex}", "type": "charge.refunded", "data": {"object": charge}})
    assert api.call("POST", "/api/stripe/webhook", data=payload, headers=headers).status == 200
    assert customer.call("GET", "/api/balance").body["balance"] == "0.000000"  # the unspent 4 went back
    shown = earnings_of(user)  # and the 3 the refunded money earned the owner is reversed
    assert (shown["lifetime"], shown["reversed"], shown["available"]) == ("3.000000", "3.000000", "0.000000")


def test_the_migration_makes_earnings_of_the_markup_recorded_before_it(database_url: str) -> None:
    """Calls recorded between the cost split (0008) and the earnings ledger (0011) already carry their markup:
    applying 0011 credits it to their owners, so the invariants hold for the old rows too."""
    from yoyo import get_backend, read_migrations

    from echo_control.db.migrations import MIGRATIONS_DIR, _yoyo_url
    from local_runner import database

    admin = database.with_database(database_url, "postgres")
    name = f"echo_backfill_{uuid.uuid4().hex[:8]}"
    database.create_database(admin, name)
    url = database.with_database(admin, name)
    try:
        backend = get_backend(_yoyo_url(url))
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations.filter(lambda m: m.id < "0011")))
        owner, payer, app = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO users (id, email) VALUES (%s, 'owner@example.com'), (%s, 'payer@example.com')",
                [owner, payer],
            )
            conn.execute("INSERT INTO echo_apps (id, name, user_id, markup) VALUES (%s, 'Old', %s, 1.5)", [app, owner])
            for cost, markup in (("1.500000", "0.500000"), ("0.300000", "0.100000"), ("0.200000", "0")):
                conn.execute(
                    "INSERT INTO llm_transactions (model, input_tokens, output_tokens, total_tokens, cost, status, "
                    "user_id, echo_app_id, markup_amount) VALUES ('gpt-4o', 1, 1, 2, %s, 'success', %s, %s, %s)",
                    [cost, payer, app, markup],
                )
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations))
        with psycopg.connect(url) as conn:
            account = conn.execute(
                "SELECT available, lifetime, pending, paid_out FROM earnings_accounts WHERE user_id = %s", [owner]
            ).fetchone()
            entries = conn.execute("SELECT count(*), sum(amount) FROM earning_entries WHERE user_id = %s", [owner])
            assert account == (Decimal("0.6"), Decimal("0.6"), 0, 0)
            assert entries.fetchone() == (2, Decimal("0.6"))
            assert conn.execute("SELECT count(*) FROM earnings_accounts").fetchone() == (1,)
    finally:
        backend.connection.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))


def test_all_time_figures_keep_the_closed_days_sum_and_read_only_the_open_days(
    api: Api, user: Session, database_url: str
) -> None:
    """Calls of days ago (moved there with their rollups) and of today: the lifetime is right before and after the
    app's closed days are summed, which happens once per day that closes, under concurrent readers."""
    app = user.create_app("Old and new", markup="2", acceptsCustomers=True)
    _, key = customer_of(api, app)
    for _ in range(3):
        call(api, key, "1")  # earns 1 each
    with psycopg.connect(database_url, autocommit=True) as conn:  # as if they had been made five days ago
        conn.execute(
            "UPDATE llm_transactions SET created_at = created_at - interval '5 days' WHERE echo_app_id = %s",
            [app["id"]],
        )
        conn.execute("UPDATE usage_daily SET day = day - 5 WHERE echo_app_id = %s", [app["id"]])
    call(api, key, "0.5")  # and one today
    barrier = threading.Barrier(8)

    def read(_: int) -> dict[str, Any]:
        barrier.wait(timeout=10)
        return Api(api.client.application).call("GET", "/api/earnings", user.token).body

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(read, range(8)))
    assert {a["apps"][0]["lifetime"] for a in answers} == {"3.500000"}
    with psycopg.connect(database_url) as conn:
        closed = conn.execute(
            "SELECT through_day, amount FROM app_earnings_closed WHERE echo_app_id = %s", [app["id"]]
        ).fetchone()
    assert closed == ((datetime.now(UTC) - timedelta(days=2)).date(), Decimal(3))  # summed once, not eight times
    call(api, key, "0.25")
    assert earnings_of(user)["apps"][0] == {
        "echoAppId": app["id"],
        "name": "Old and new",
        "lifetime": "3.750000",
        "last30Days": "3.750000",
    }
    by_app = user.call("GET", f"/api/echo-apps/{app['id']}/earnings").body
    assert by_app["lifetime"] == "3.750000" and len(by_app["byDay"]) == 2
    other = user.create_app("Fresh", markup="2", acceptsCustomers=True)  # no closed row yet: read, then summed
    assert user.call("GET", f"/api/echo-apps/{other['id']}/earnings").body["lifetime"] == "0.000000"
