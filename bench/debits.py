"""Debits per second through the real authorizer and RecordTransaction handler, against pgbench running the
same SQL on the same server, side by side: (a) many users, (b) one hot user with 16 concurrent callers, (c) many
customers of one app with a markup, every debit earning the same owner, (d) many users whose apps have prices of their
own (allowed models and an override; loaded once per function and version, so the statements stay the same), and (e)
the hot-row check: the same callers on one app's customers against customers spread over as many owners, with the lock
waits sampled from pg_locks in each (a debit appends its owner's earning and locks nothing shared: within 10%).

    python bench/debits.py [--seconds 8] [--rounds 3] [--users 200] [--callers 16] [--processes 4]

Our side runs like Lambda scales: several processes (containers), each with a few threads, each thread its own
connection. Rounds alternate ours/pgbench; medians are reported (the machine is shared and noisy)."""

import argparse
import json
import tempfile
from decimal import Decimal
from pathlib import Path
from statistics import median

from common import (  # type: ignore[import-not-found]
    Callers,
    add_authorizer_ttl_argument,
    api_event,
    drop_database,
    fresh_database,
    one_line,
    print_case,
    run_pgbench,
    through_authorizer,
    use_authorizer_ttl,
)

from tests.invariants import markup_not_earned, unreconciled_balances, unreconciled_earnings

# No cost: each call is priced from genai-prices' data on the path, as a proxy that sends only usage would have it.
CALL_BODY = json.dumps({"model": "gpt-4o-mini", "inputTokens": 120, "outputTokens": 40})
PRICED_COST = "0.000042"  # 120 x $0.15 + 40 x $0.60 per million: what pgbench's copy of the statement debits
SHARED_MARKUP = Decimal("1.25")  # case (c): 0.000042 x 0.25 = 0.0000105, half-up 0.000011 to the owner
SHARED_COST, SHARED_EARNING = "0.000053", "0.000011"


def setup(users: int) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """users × (user, app, key) with a large balance, and each user's customer key for one shared app of another
    owner (markup 1.25); returns ((key, user id) of their own apps, the shared app's keys, keys to another user's app)
    and fills bench_keys and bench_shared_keys for pgbench."""
    from echo_control import db, keys, ledger

    out, shared, crossed = [], [], []
    with db.transaction() as conn:
        for table in ("bench_keys", "bench_shared_keys"):
            conn.execute(
                f"CREATE TABLE {table} (n int PRIMARY KEY, user_id uuid, app_id uuid, key_id uuid, key_hash bytea)"
            )
    owner = db.user_for_clerk_id("bench_owner", "bench-owner@example.com", None)
    assert owner is not None
    shared_app = db.insert_app(owner["id"], "bench shared app", None, SHARED_MARKUP, accepts_customers=True)
    for n in range(1, users + 1):
        user = db.user_for_clerk_id(f"bench_{n}", f"bench{n}@example.com", None)
        assert user is not None
        app = db.insert_app(user["id"], f"bench app {n}", None, Decimal(1), accepts_customers=True)
        key = keys.generate_key()
        row = db.insert_api_key(user["id"], app["id"], None, keys.key_hash(key), key[:12], key[-4:], None)
        with db.transaction() as conn:
            ledger.credit(
                conn,
                user["id"],
                Decimal(1_000_000),
                kind="admin_adjustment",
                key=f"bench:{n}",
                reference_id=None,
                paid=Decimal(0),
                cash=True,
            )
            conn.execute(
                "INSERT INTO bench_keys VALUES (%s, %s, %s, %s, %s)",
                [n, user["id"], app["id"], row["id"], keys.key_hash(key)],
            )
        out.append((key, str(user["id"])))
        customer_key = keys.generate_key()
        customer_row = db.insert_api_key(
            user["id"],
            shared_app["id"],
            None,
            keys.key_hash(customer_key),
            customer_key[:12],
            customer_key[-4:],
            None,
            as_customer=True,
        )
        assert customer_row is not None
        with db.transaction() as conn:
            conn.execute(
                "INSERT INTO bench_shared_keys VALUES (%s, %s, %s, %s, %s)",
                [n, user["id"], shared_app["id"], customer_row["id"], keys.key_hash(customer_key)],
            )
        shared.append(customer_key)
    # case (e): each user is also a customer of the next user's app (markup 1), so N callers earn N owners

    with db.transaction() as conn:
        bench = conn.execute("SELECT n, user_id, app_id FROM bench_keys ORDER BY n").fetchall()
    for i, row in enumerate(bench):
        other = bench[(i + 1) % len(bench)]
        cross_key = keys.generate_key()
        made = db.insert_api_key(
            row["user_id"],
            other["app_id"],
            None,
            keys.key_hash(cross_key),
            cross_key[:12],
            cross_key[-4:],
            None,
            as_customer=True,
        )
        assert made is not None
        crossed.append(cross_key)

    db.discard_connection()
    return out, shared, crossed


def with_lock_waits(url: str, run) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """What `run()` returns, with the mean number of lock waits (ungranted pg_locks of our sessions) during it."""
    import threading

    import psycopg

    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not done.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND a.datname = current_database()"
                ).fetchone()
                samples.append(row[0] if row else 0)
                done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = run()
    finally:
        done.set()
        sampler.join()
    return result, sum(samples) / max(len(samples), 1)


def one_debit(gateway, key: str) -> None:  # type: ignore[no-untyped-def]
    """One metered call through the authorizer and RecordTransaction."""
    through_authorizer(
        gateway, "/api/transactions", api_event("/api/transactions", "/api/transactions", key, CALL_BODY)
    )


def give_apps_prices() -> None:
    """Every bench app allows two models and prices the called one itself, at the price list's price (so the debit
    is the same): each debit then checks the model and prices it from the app's prices."""
    from echo_control import db

    with db.transaction() as conn:
        app_ids = [row["app_id"] for row in conn.execute("SELECT app_id FROM bench_keys").fetchall()]
        for app_id in app_ids:
            db.replace_app_prices(
                conn,
                app_id,
                [("gpt-4o-mini", "gpt-4o-mini"), ("gpt-4o", "gpt-4o")],
                [OVERRIDE],
            )
    db.discard_connection()


OVERRIDE = {
    "model_key": "gpt-4o-mini",
    "model": "gpt-4o-mini",
    "input_per_million": Decimal("0.15"),
    "output_per_million": Decimal("0.60"),
    "cache_read_per_million": None,
    "cache_write_per_million": None,
}


def pgbench_script(hot: bool, shared: bool = False) -> str:
    """The same two statements the path sends: the authorizer's key lookup and the one-statement debit."""
    from echo_control import db
    from echo_control.db import keys as db_keys

    table = "bench_shared_keys" if shared else "bench_keys"
    pick = "\\set n 1\n" if hot else "\\set n random(1, :users)\n"
    key = db_keys._ACTIVE_KEY_BY_HASH.replace("%(hash)s", f"(SELECT key_hash FROM {table} WHERE n = :n)").replace(
        "%(count_hit)s", "true"
    )
    values = {
        "cost": f"{SHARED_COST if shared else PRICED_COST}::numeric",
        "markup_amount": f"{SHARED_EARNING if shared else 0}::numeric",
        "provider": "NULL::text",
        "cache_read_tokens": "0",
        "cache_write_tokens": "0",
        "reasoning_tokens": "0",
        "user_id": f"(SELECT user_id FROM {table} WHERE n = :n)",
        "echo_app_id": f"(SELECT app_id FROM {table} WHERE n = :n)",
        "api_key_id": f"(SELECT key_id FROM {table} WHERE n = :n)",
        "model": "'gpt-4o-mini'",
        "input_tokens": "120",
        "output_tokens": "40",
        "total_tokens": "160",
        "status": "'success'",
        "metadata": "NULL::jsonb",
        "require_funds": "false",
        "clearing_days": "7",
    }
    debit = db.RECORD_DEBIT
    for name, sql in values.items():
        debit = debit.replace(f"%({name})s", sql)
    flatten = one_line
    return pick + flatten(key) + ";\n" + flatten(debit) + ";\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--processes", type=int, default=4)
    add_authorizer_ttl_argument(parser)
    args = parser.parse_args()
    use_authorizer_ttl(args.authorizer_ttl)

    url, admin = fresh_database("echo_bench_debits")
    try:
        holders, shared_keys, crossed_keys = setup(args.users)
        all_keys = [k for k, _ in holders]
        print(
            f"debit benchmark: {args.callers} concurrent callers, {args.seconds}s x {args.rounds} rounds, medians; "
            f"authorizer cache {args.authorizer_ttl:g}s"
        )
        print(f"{'case':<28}{'ours debits/s':>15}{'pgbench tps':>15}{'ratio':>8}{'load':>7}")
        cases = (
            ("(a) many users", False, False, all_keys),
            ("(b) one hot user", True, False, all_keys[:1]),
            ("(c) one owner's customers", False, True, shared_keys),
            ("(d) many users, app prices", False, False, all_keys),
        )
        with Callers(url, args.callers, args.processes) as callers:
            for label, hot, shared, keys_to_use in cases:
                if label.startswith("(d)"):
                    give_apps_prices()
                script = Path(tempfile.mkstemp(suffix=".sql")[1])
                script.write_text(pgbench_script(hot, shared))
                ours_rates, bench_rates = [], []
                for _ in range(args.rounds):
                    ours_rates.append(callers.rate(one_debit, keys_to_use, args.seconds))
                    bench_rates.append(run_pgbench(url, script, args.callers, args.seconds, {"users": str(args.users)}))
                print_case(label, ours_rates, bench_rates)
            # (e) the hot row: the same callers on one app's customers against customers spread over many owners,
            # with the lock waits seen meanwhile (pg_locks not granted, sampled every 20 ms)
            one_app, many = [], []
            for _ in range(args.rounds):
                one_app.append(with_lock_waits(url, lambda: callers.rate(one_debit, shared_keys, args.seconds)))
                many.append(with_lock_waits(url, lambda: callers.rate(one_debit, crossed_keys, args.seconds)))
            a, b = median(r for r, _ in one_app), median(r for r, _ in many)
            print(
                f"(e) one app's customers {a:.0f}/s, lock waits {median(w for _, w in one_app):.2f}; "
                f"spread over {args.users} owners {b:.0f}/s, lock waits {median(w for _, w in many):.2f}; "
                f"ratio {a / b:.2f}"
            )
        from echo_control import db

        failures = unreconciled_balances()
        print(f"reconciliation after the run: {len(failures)} users off", end="; ")
        print(
            f"{len(unreconciled_earnings())} owners' earnings off; {len(markup_not_earned())} calls' markup not earned"
        )
    finally:
        from echo_control import db

        db.discard_connection()
        drop_database(admin, url)


if __name__ == "__main__":
    main()
