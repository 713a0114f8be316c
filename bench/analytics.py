"""Analytics at ten million transactions: p50/p99 latency of the usage endpoint, the app list, the first and a
deep page of history, and the owners' earnings (all apps, and one app by day and model), through the real handlers.

    python bench/analytics.py [--rows 10000000] [--requests 300] [--keep]

Loads 1,000 users and 200 apps (owned by 100 of the users: a key meters its owner, so the owners carry the
traffic; markups from 1 to 2) with a year of transactions via COPY, builds the daily rollups and the owners' cached
earnings the debit path keeps, then times each endpoint's handler with the authorizer's context, as API Gateway
invokes it."""

import argparse
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from common import drop_database, fresh_database  # type: ignore[import-not-found]

MODELS = [
    ("gpt-4o", 2500, 10000),
    ("gpt-4o-mini", 150, 600),
    ("claude-3-5-sonnet", 3000, 15000),
    ("claude-3-5-haiku", 800, 4000),
    ("gemini-2.0-flash", 100, 400),
    ("gemini-2.5-pro", 1250, 10000),
    ("o4-mini", 1100, 4400),
    ("gpt-4.1", 2000, 8000),
]  # micro-dollars per 1k tokens (in, out)
USERS, APPS, OWNERS = 1000, 200, 100


def without_indexes(conn, table: str):  # type: ignore[no-untyped-def]
    """Drops the table's indexes, its constraints that have one and the foreign keys that point at them (COPY into a
    table without indexes is several times faster); returns what puts them all back, as the migrations made them.
    Read from the catalog, so a migration that adds an index or a reference to the table needs no change here."""
    constraints = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype = 'f' FROM pg_constraint "
        "WHERE (conrelid = %(t)s::regclass AND contype IN ('p', 'u', 'x')) OR (confrelid = %(t)s::regclass "
        "AND contype = 'f') ORDER BY contype = 'f' DESC",
        {"t": table},
    ).fetchall()
    owned = {name for _, name, _, _ in constraints}
    indexes = [
        (name, sql)
        for name, sql in conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s",
            [table],
        ).fetchall()
        if name not in owned
    ]
    for relation, name, _, _ in constraints:  # foreign keys first: they depend on the key's index
        conn.execute(f'ALTER TABLE {relation} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')

    def rebuild() -> None:
        for relation, name, definition, _ in reversed(constraints):  # keys first, then what references them
            conn.execute(f'ALTER TABLE {relation} ADD CONSTRAINT "{name}" {definition}')
        for _, sql in indexes:
            conn.execute(sql)

    return rebuild


def load(conn, rows: int) -> tuple[list[uuid.UUID], list[tuple[uuid.UUID, uuid.UUID]]]:
    users = [uuid.uuid4() for _ in range(USERS)]
    apps = [(uuid.uuid4(), users[i % OWNERS]) for i in range(APPS)]
    quarters = [i % 5 for i in range(APPS)]  # markup 1 + quarters/4: 1, 1.25, 1.5, 1.75, 2
    with conn.cursor().copy("COPY users (id, email, clerk_id) FROM STDIN") as copy:
        for n, user in enumerate(users):
            copy.write_row((user, f"user{n}@bench.example", f"bench_{n}"))
    with conn.cursor().copy("COPY echo_apps (id, name, user_id, markup) FROM STDIN") as copy:
        for n, (app, owner) in enumerate(apps):
            copy.write_row((app, f"App {n}", owner, 1 + quarters[n] / 4))
    conn.execute("ALTER TABLE llm_transactions DISABLE TRIGGER ALL")  # FK checks: the generator keeps them true
    rebuild = without_indexes(conn, "llm_transactions")
    weights = [1 / (i + 1) ** 0.8 for i in range(APPS)]  # some apps are much busier than others
    start = datetime.now(UTC) - timedelta(days=365)
    per_day = rows // 365
    rng = random.Random(7)
    columns = (
        "id, model, input_tokens, output_tokens, total_tokens, cost, status, user_id, echo_app_id, created_at, "
        "markup_amount"
    )
    with conn.cursor().copy(f"COPY llm_transactions ({columns}) FROM STDIN") as copy:
        for day in range(365):
            count = per_day + (rows - per_day * 365 if day == 364 else 0)
            base = start + timedelta(days=day)
            picks = rng.choices(range(APPS), weights=weights, k=count)
            seconds = sorted(rng.random() * 86400 for _ in range(count))
            lines = []
            for app_index, second in zip(picks, seconds, strict=True):
                model, price_in, price_out = MODELS[rng.randrange(len(MODELS))]
                tokens_in, tokens_out = rng.randrange(50, 4000), rng.randrange(10, 1500)
                micros = (tokens_in * price_in + tokens_out * price_out) // 1000
                markup = (2 * micros * quarters[app_index] + 4) // 8  # micros × quarters / 4, half-up
                micros += markup
                status = "success" if rng.random() < 0.97 else ("error" if rng.random() < 0.7 else "timeout")
                app, owner = apps[app_index]
                stamp = (base + timedelta(seconds=second)).isoformat()
                lines.append(
                    f"{uuid.uuid4()}\t{model}\t{tokens_in}\t{tokens_out}\t{tokens_in + tokens_out}\t"
                    f"{micros // 1_000_000}.{micros % 1_000_000:06d}\t{status}\t{owner}\t{app}\t{stamp}\t"
                    f"{markup // 1_000_000}.{markup % 1_000_000:06d}\n"
                )
            copy.write("".join(lines))
    rebuild()
    conn.execute("ALTER TABLE llm_transactions ENABLE TRIGGER ALL")
    conn.execute("""
        INSERT INTO usage_daily (echo_app_id, day, model, status, user_id, calls, input_tokens, output_tokens,
                                 total_tokens, cost, markup_amount)
        SELECT echo_app_id, (created_at AT TIME ZONE 'UTC')::date, model, status, user_id, count(*),
               sum(input_tokens), sum(output_tokens), sum(total_tokens), sum(cost), sum(markup_amount)
        FROM llm_transactions GROUP BY 1, 2, 3, 4, 5""")
    # The owners' cached earnings, as the debits keep them (the entries themselves are not read by these endpoints).
    conn.execute("""
        INSERT INTO earnings_accounts (user_id, available, lifetime)
        SELECT a.user_id, sum(u.markup_amount), sum(u.markup_amount)
        FROM usage_daily u JOIN echo_apps a ON a.id = u.echo_app_id GROUP BY a.user_id""")
    conn.execute("VACUUM ANALYZE llm_transactions")
    conn.execute("VACUUM ANALYZE usage_daily")
    return users, apps


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    url, admin = fresh_database("echo_bench_analytics")
    import psycopg

    from echo_control import db, ledger
    from local_runner.server import LocalApiGateway

    try:
        began = time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            _, apps = load(conn, args.rows)
            size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
            tables = conn.execute(
                "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class "
                "WHERE relname IN ('llm_transactions', 'usage_daily') ORDER BY relname"
            ).fetchall()
            rollup_rows = conn.execute("SELECT count(*) FROM usage_daily").fetchone()[0]
        # The app earnings' closed days, as a running deployment has them (each is summed once, when first read):
        # the first read of the busiest app's whole history, then every other app's.
        from echo_control import earnings

        closed = earnings._closed_through()
        busiest = apps[0][0]  # the weights make the first app the busiest
        first = time.perf_counter()
        db.close_earnings_days([busiest], closed)
        first_ms = (time.perf_counter() - first) * 1000
        db.close_earnings_days([app for app, _ in apps], closed)
        print(
            f"loaded {args.rows:,} transactions in {time.monotonic() - began:.0f}s; database {size}; "
            + ", ".join(f"{name} {pretty}" for name, pretty in tables)
            + f"; {rollup_rows:,} rollup rows; the busiest app's closed earnings days summed in {first_ms:.0f} ms"
        )

        gateway = LocalApiGateway()
        routes = {(r.method, r.path): r for r in gateway.api.routes}
        owners = sorted({owner for _, owner in apps})

        def context(user: uuid.UUID) -> dict:
            return {
                "userId": str(user),
                "email": "bench@example.com",
                "role": "user",
                "authType": "user",
                "principalId": str(user),
            }

        def event(
            path_template: str, path: str, user: uuid.UUID, query: dict | None = None, params: dict | None = None
        ) -> dict:
            return {
                "resource": path_template,
                "path": path,
                "httpMethod": "GET",
                "headers": {},
                "multiValueHeaders": {},
                "queryStringParameters": query,
                "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
                "pathParameters": params,
                "body": None,
                "isBase64Encoded": False,
                "requestContext": {
                    "requestId": str(uuid.uuid4()),
                    "authorizer": context(user),
                    "resourcePath": path_template,
                    "httpMethod": "GET",
                },
            }

        deep_cursor = {}
        for owner in owners:  # a cursor about six months back in each owner's history
            row = (
                db.connection()
                .execute(
                    "SELECT id, created_at FROM llm_transactions WHERE user_id = %s AND created_at < now() - interval "
                    "'182 days' ORDER BY created_at DESC, id DESC LIMIT 1",
                    [owner],
                )
                .fetchone()
            )
            if row:
                deep_cursor[owner] = ledger.encode_cursor(row)

        rng = random.Random(11)
        cases = {
            "usage (30 days)": lambda: (
                routes[("GET", "/api/echo-apps/{id}/usage")],
                event(
                    "/api/echo-apps/{id}/usage",
                    f"/api/echo-apps/{(a := rng.choice(apps))[0]}/usage",
                    a[1],
                    params={"id": str(a[0])},
                ),
            ),
            "app list with totals": lambda: (
                routes[("GET", "/api/echo-apps")],
                event("/api/echo-apps", "/api/echo-apps", rng.choice(owners)),
            ),
            "history, first page": lambda: (
                routes[("GET", "/api/transactions")],
                event("/api/transactions", "/api/transactions", rng.choice(owners), query={"limit": "50"}),
            ),
            "history, page ~6 months deep": lambda: (
                routes[("GET", "/api/transactions")],
                event(
                    "/api/transactions",
                    "/api/transactions",
                    (o := rng.choice(list(deep_cursor))),
                    query={"limit": "50", "cursor": deep_cursor[o]},
                ),
            ),
            "earnings, all apps": lambda: (
                routes[("GET", "/api/earnings")],
                event("/api/earnings", "/api/earnings", rng.choice(owners)),
            ),
            "app earnings (30 days)": lambda: (
                routes[("GET", "/api/echo-apps/{id}/earnings")],
                event(
                    "/api/echo-apps/{id}/earnings",
                    f"/api/echo-apps/{(a := rng.choice(apps))[0]}/earnings",
                    a[1],
                    params={"id": str(a[0])},
                ),
            ),
        }
        print(f"{'endpoint (handler)':<32}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}   ({args.requests} requests each)")
        for label, make in cases.items():
            function = None
            timings = []
            for i in range(args.requests + 20):
                route, ev = make()
                function = gateway.functions[route.code_dir]
                began = time.perf_counter()
                result = function.invoke(ev)
                elapsed = (time.perf_counter() - began) * 1000
                assert result["statusCode"] == 200, result["body"]
                if i >= 20:  # the first calls warm the container and the connection
                    timings.append(elapsed)
            print(f"{label:<32}{statistics.median(timings):>9.2f}{percentile(timings, 99):>9.2f}{max(timings):>9.2f}")
    finally:
        db.discard_connection()
        if not args.keep:
            drop_database(admin, url)


if __name__ == "__main__":
    main()
