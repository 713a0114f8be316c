"""Hold + settle pairs per second through the real authorizer and the CreateHold and SettleHold handlers, against
pgbench running the same SQL on the same server, side by side: (a) many users, (b) one hot user.

    python bench/holds.py [--seconds 8] [--rounds 3] [--users 200] [--callers 16] [--processes 4]

A pair is what a streaming proxy does per call: reserve (POST /api/holds with the model's token ceilings, priced
from genai-prices), then settle with the real usage (POST /api/holds/{id}/settle), each through the authorizer.
Our side runs like Lambda scales: several processes, each with a few threads, each thread its own connection.
Rounds alternate ours/pgbench; medians are reported (the machine is shared and noisy)."""

import argparse
import json
import tempfile
from pathlib import Path

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
from debits import setup  # type: ignore[import-not-found]

from tests.invariants import held_mismatches, unreconciled_balances

HOLD_BODY = json.dumps({"model": "gpt-4o-mini", "maxInputTokens": 4000, "maxOutputTokens": 1000, "ttlSeconds": 60})
SETTLE_BODY = json.dumps({"model": "gpt-4o-mini", "inputTokens": 120, "outputTokens": 40})
HOLD_AMOUNT = "0.001200"  # 4000 x $0.15 + 1000 x $0.60 per million: what pgbench's copy reserves
SETTLE_COST = "0.000042"  # 120 x $0.15 + 40 x $0.60 per million


def one_pair(gateway, key: str) -> None:  # type: ignore[no-untyped-def]
    """A hold, then its settle, each through the authorizer and its function."""
    made = through_authorizer(gateway, "/api/holds", api_event("/api/holds", "/api/holds", key, HOLD_BODY))
    hold_id = json.loads(made["body"])["id"]
    path = f"/api/holds/{hold_id}/settle"
    settle = api_event(path, "/api/holds/{id}/settle", key, SETTLE_BODY, {"id": hold_id})
    through_authorizer(gateway, "/api/holds/{id}/settle", settle)


def pgbench_script(hot: bool) -> str:
    """The statements the path sends for a pair: per request the authorizer's key lookup; the one-statement hold;
    the settle's lookup, then in a transaction the settle's claim (its Idempotency record), the settle and its
    stored answer."""
    from echo_control.db import holds as hold_sql
    from echo_control.db import idempotency as idempotency_sql
    from echo_control.db import keys as key_sql

    pick = "\\set n 1\n" if hot else "\\set n random(1, :users)\n"
    key = key_sql._ACTIVE_KEY_BY_HASH.replace("%(hash)s", "(SELECT key_hash FROM bench_keys WHERE n = :n)").replace(
        "%(count_hit)s", "true"
    )
    common = {
        "user_id": "(SELECT user_id FROM bench_keys WHERE n = :n)",
        "echo_app_id": "(SELECT app_id FROM bench_keys WHERE n = :n)",
        "api_key_id": "(SELECT key_id FROM bench_keys WHERE n = :n)",
    }
    create = hold_sql._CREATE_HOLD
    for name, sql in {**common, "amount": f"{HOLD_AMOUNT}::numeric", "ttl_seconds": "60"}.items():
        create = create.replace(f"%({name})s", sql)
    settle = hold_sql._SETTLE_HOLD
    values = {
        **common,
        "hold_id": "':id'::uuid",
        "cost": f"{SETTLE_COST}::numeric",
        "markup_amount": "0::numeric",
        "clearing_days": "7",
        "provider": "NULL::text",
        "cache_read_tokens": "0",
        "cache_write_tokens": "0",
        "reasoning_tokens": "0",
        "model": "'gpt-4o-mini'",
        "input_tokens": "120",
        "output_tokens": "40",
        "total_tokens": "160",
        "status": "'success'",
        "metadata": "NULL::jsonb",
    }
    for name, sql in values.items():
        settle = settle.replace(f"%({name})s", sql)
    claim = idempotency_sql._CLAIM
    claim_values = {
        "kind": "'hold'",
        "id": "':id'::uuid",
        "key": "'settle'",
        "operation": "'settle_hold'",
        "hash": "'b'",
    }
    for name, sql in claim_values.items():
        claim = claim.replace(f"%({name})s", sql)
    read_back = "SELECT * FROM holds WHERE id = ':id'::uuid AND user_id = (SELECT user_id FROM bench_keys WHERE n = :n)"
    flatten = one_line
    return (
        pick
        + f"{flatten(key)};\n"
        + f"{flatten(create).replace('hold.*', 'hold.id::text AS id')} \\gset\n"
        + f"{flatten(key)};\n"
        + f"{read_back};\n"
        + "BEGIN;\n"
        + f"{flatten(claim)};\n"
        + f"{flatten(settle)};\n"
        + "UPDATE idempotency_keys SET response = '{}'::jsonb "
        + "WHERE scope_kind = 'hold' AND scope_id = ':id'::uuid AND key = 'settle';\n"
        + "COMMIT;\n"
    )


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

    url, admin = fresh_database("echo_bench_holds")
    try:
        holders, _, _ = setup(args.users)
        all_keys = [k for k, _ in holders]
        print(
            f"hold + settle benchmark: {args.callers} concurrent callers, {args.seconds}s x {args.rounds} rounds; "
            f"authorizer cache {args.authorizer_ttl:g}s"
        )
        print(f"{'case':<28}{'ours pairs/s':>15}{'pgbench tps':>15}{'ratio':>8}{'load':>7}")
        with Callers(url, args.callers, args.processes) as callers:
            for label, hot in (("(a) many users", False), ("(b) one hot user", True)):
                script = Path(tempfile.mkstemp(suffix=".sql")[1])
                script.write_text(pgbench_script(hot))
                ours_rates, bench_rates = [], []
                for _ in range(args.rounds):
                    ours_rates.append(callers.rate(one_pair, all_keys[:1] if hot else all_keys, args.seconds))
                    bench_rates.append(run_pgbench(url, script, args.callers, args.seconds, {"users": str(args.users)}))
                print_case(label, ours_rates, bench_rates)
        print(f"after the run: {len(unreconciled_balances())} balances off, {len(held_mismatches())} held sums off")
    finally:
        from echo_control import db

        db.discard_connection()
        drop_database(admin, url)


if __name__ == "__main__":
    main()
