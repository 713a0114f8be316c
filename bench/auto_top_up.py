"""What automatic top-up costs a metered call, side by side in one run: debits per second through the real authorizer
and RecordTransaction handler, and pgbench running the same two statements on the same server, for (a) users
without auto top-up, (b) users with it on and above their threshold (the trigger's WHEN is false: the trigger is not
called), and (c) users below their threshold with a charge in flight (every debit calls the trigger, which locks the
settings row, computes what can be spent and finds the charge in flight). Ratios to (a) on each side say what auto
top-up adds to the statement; the protocol messages one call sends (libpq's trace of the container's connection) say
whether it adds a round trip; EXPLAIN ANALYZE of the statement, run one at a time, says what the trigger itself
takes on the server.

    python bench/auto_top_up.py [--seconds 6] [--rounds 3] [--users 100] [--callers 8] [--processes 4]

Rounds alternate ours/pgbench; medians are reported (the machine is shared and noisy)."""

import argparse
import collections
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from statistics import median

from common import (  # type: ignore[import-not-found]
    Callers,
    api_event,
    drop_database,
    fresh_database,
    run_pgbench,
    through_authorizer,
)
from debits import CALL_BODY, one_debit, pgbench_script  # type: ignore[import-not-found]

from tests.invariants import auto_top_up_mismatches, unreconciled_balances

GROUPS = {"plain": "(a) no auto top-up", "above": "(b) on, above threshold", "below": "(c) below, one in flight"}
BALANCE = Decimal(1_000_000)


def setup(users: int) -> dict[str, list[str]]:
    """`users` users per group, each with a key of their own app and a large balance; a table of keys per group for
    pgbench (bench_keys_<group>, the columns bench/debits.py's script reads)."""
    from echo_control import db, keys, ledger

    out: dict[str, list[str]] = {}
    for group in GROUPS:
        with db.transaction() as conn:
            conn.execute(
                f"CREATE TABLE bench_keys_{group} (n int PRIMARY KEY, user_id uuid, app_id uuid, key_id uuid, "
                "key_hash bytea)"
            )
        out[group] = []
        for n in range(1, users + 1):
            user = db.user_for_clerk_id(f"bench_{group}_{n}", f"bench-{group}-{n}@example.com", None)
            assert user is not None
            app = db.insert_app(user["id"], f"bench {group} {n}", None, Decimal(1), accepts_customers=False)
            key = keys.generate_key()
            row = db.insert_api_key(user["id"], app["id"], None, keys.key_hash(key), key[:12], key[-4:], None)
            with db.transaction() as conn:
                ledger.credit(
                    conn,
                    user["id"],
                    BALANCE,
                    kind="admin_adjustment",
                    key=f"bench:{group}:{n}",
                    reference_id=None,
                    paid=Decimal(0),
                    cash=True,
                )
                conn.execute(
                    f"INSERT INTO bench_keys_{group} VALUES (%s, %s, %s, %s, %s)",
                    [n, user["id"], app["id"], row["id"], keys.key_hash(key)],
                )
                if group != "plain":
                    conn.execute(
                        "INSERT INTO billing_customers (user_id, stripe_customer_id, payment_method_id) "
                        "VALUES (%s, %s, 'pm_bench')",
                        [user["id"], f"cus_bench_{group}_{n}"],
                    )
                    db.lock_funds(conn, user["id"])
                    db.store_auto_top_up(
                        conn,
                        user["id"],
                        enabled=True,
                        threshold=Decimal(1) if group == "above" else BALANCE * 2,
                        amount=Decimal(20),
                        monthly_limit=BALANCE,
                        clear_error=False,
                    )
            out[group].append(key)
    db.discard_connection()
    return out


def protocol_messages(gateway, key: str) -> collections.Counter[str]:  # type: ignore[no-untyped-def]
    """The frontend messages one call sends on the container's connection (the authorizer's and the debit's):
    libpq's trace, whose Sync and Query messages are the round trips."""
    from psycopg.pq import Trace

    from echo_control import db

    conn = db.connection()
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)
        through_authorizer(
            gateway, "/api/transactions", api_event("/api/transactions", "/api/transactions", key, CALL_BODY)
        )
        conn.pgconn.untrace()
        trace.seek(0)
        lines = [line.split("\t") for line in trace.read().splitlines()]
    return collections.Counter(parts[2].split(" ")[0] for parts in lines if len(parts) > 2 and parts[0] == "F")


def statement_times(table: str, runs: int) -> tuple[list[float], list[float]]:
    """The debit statement's own time on the server, as EXPLAIN ANALYZE reports it (ms, for `runs` debits of the
    group's users), and the auto top-up trigger's part of each (0 when it is not called)."""
    from echo_control import db

    conn = db.connection()
    users = conn.execute(f"SELECT user_id, app_id, key_id FROM {table} ORDER BY n").fetchall()
    total, trigger = [], []
    for i in range(runs):
        user = users[i % len(users)]
        params = {
            "user_id": user["user_id"],
            "echo_app_id": user["app_id"],
            "api_key_id": user["key_id"],
            "model": "gpt-4o-mini",
            "provider": None,
            "input_tokens": 120,
            "output_tokens": 40,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "reasoning_tokens": 0,
            "total_tokens": 160,
            "cost": Decimal("0.000042"),
            "markup_amount": Decimal(0),
            "status": "success",
            "metadata": None,
            "require_funds": False,
            "clearing_days": 7,
        }
        row = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + db.RECORD_DEBIT, params).fetchone()
        assert row is not None
        [plan] = row["QUERY PLAN"]
        total.append(plan["Execution Time"])
        trigger.append(sum(t["Time"] for t in plan.get("Triggers", []) if t["Trigger Name"] == "balances_auto_top_up"))
    return total, trigger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()

    url, admin = fresh_database("echo_bench_top_up")
    try:
        keys_of = setup(args.users)
        from echo_control import db
        from local_runner.server import LocalApiGateway

        gateway = LocalApiGateway()
        for key in keys_of["below"]:  # each (c) user's first debit requests its charge, which stays in flight
            one_debit(gateway, key)
        one_debit(gateway, keys_of["plain"][0])  # warm: the first call of a key fills the functions' caches
        one_debit(gateway, keys_of["plain"][1])
        plain, below = protocol_messages(gateway, keys_of["plain"][1]), protocol_messages(gateway, keys_of["below"][1])
        print(f"protocol messages of one call: (a) {dict(plain)}; (c) {dict(below)}; same: {plain == below}")
        in_flight = db.connection().execute("SELECT count(*) AS n FROM auto_top_up_charges").fetchone()
        print(f"charges in flight in (c): {in_flight['n'] if in_flight else 0} (one per user)")
        runs = max(args.users, 20) // 2
        times: dict[str, tuple[list[float], list[float]]] = {group: ([], []) for group in GROUPS}
        for _ in range(4):  # the groups interleaved, so load drifts reach all alike
            for group in GROUPS:
                total, trigger = statement_times(f"bench_keys_{group}", runs)
                times[group][0].extend(total)
                times[group][1].extend(trigger)
        for group, label in GROUPS.items():
            total_ms, trigger_ms = median(times[group][0]), median(times[group][1])
            said = f"the debit statement {total_ms:.3f} ms on the server, its trigger {trigger_ms:.3f} ms"
            print(f"{label}: {said} (medians of {len(times[group][0])}, EXPLAIN ANALYZE)")
        db.discard_connection()

        print(f"debits with auto top-up: {args.callers} callers, {args.seconds}s x {args.rounds} rounds, medians")
        print(f"{'case':<28}{'ours debits/s':>15}{'pgbench tps':>15}{'ratio':>8}{'load':>7}")
        results: dict[str, tuple[float, float]] = {}
        with Callers(url, args.callers, args.processes) as callers:
            scripts = {}
            for group in GROUPS:
                script = Path(tempfile.mkstemp(suffix=".sql")[1])
                script.write_text(pgbench_script(hot=False).replace("bench_keys", f"bench_keys_{group}"))
                scripts[group] = script
            rates: dict[str, tuple[list[float], list[float]]] = {group: ([], []) for group in GROUPS}
            for _ in range(args.rounds):  # the groups interleaved in each round, so load drifts reach all alike
                for group in GROUPS:
                    rates[group][0].append(callers.rate(one_debit, keys_of[group], args.seconds))
                    rates[group][1].append(
                        run_pgbench(url, scripts[group], args.callers, args.seconds, {"users": str(args.users)})
                    )
            for group, label in GROUPS.items():
                ours, bench = median(rates[group][0]), median(rates[group][1])
                results[group] = (ours, bench)
                print(f"{label:<28}{ours:>15.0f}{bench:>15.0f}{ours / bench:>8.2f}{os.getloadavg()[0]:>7.1f}")
                rounds = f"ours {' '.join(f'{x:.0f}' for x in rates[group][0])}"
                print(f"{'':<4}rounds: {rounds}; pgbench {' '.join(f'{x:.0f}' for x in rates[group][1])}")
        for group in ("above", "below"):
            ours, bench = results[group]
            print(
                f"{GROUPS[group]} against (a): ours {ours / results['plain'][0]:.2f}, "
                f"pgbench {bench / results['plain'][1]:.2f}"
            )
        charges = db.connection().execute("SELECT count(*) AS n FROM auto_top_up_charges").fetchone()
        print(
            f"after the run: {charges['n'] if charges else 0} charges (still one per (c) user); "
            f"{len(unreconciled_balances())} users' balances off; "
            f"{len(auto_top_up_mismatches())} auto top-up rules broken"
        )
    finally:
        from echo_control import db

        db.discard_connection()
        drop_database(admin, url)


if __name__ == "__main__":
    main()
