"""Developers' webhooks, locally: how long from a change's commit until the receiver has its webhook (p50/p99),
and what a storm of 1,000 events does, through the local runner's deliverer (webhook_delivery.run_local: the
outbox, NOTIFY on commit, 8 sending threads) to a real HTTP receiver on loopback that verifies every signature.

    python bench/webhooks.py [--paced 300] [--storm 1000] [--writers 8]

Each event is a real money change: a ledger credit and its event, committed together (in the storm, credits to
50 payers, every event for one developer's endpoint, as when many customers pay at once). Paced: one change every
10-30 ms from one writer (what latency looks like under light load). Storm: `--storm` changes committed as fast as
`--writers` threads can, all for one endpoint; reported are the commit rate, the time until the last webhook
arrived, p50/p99/max from commit to receipt, and lost, duplicated or badly signed webhooks (each must be 0)."""

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from common import drop_database, fresh_database  # type: ignore[import-not-found]

PAYERS = 50


class Receipts:
    def __init__(self) -> None:
        self.verifier: Any = None  # the endpoint's secret is known once the endpoint (which needs our URL) exists
        self.lock = threading.Lock()
        self.at: dict[str, list[float]] = {}
        self.bad = 0

    def record(self, headers: dict[str, str], body: str) -> None:
        now = time.perf_counter()
        try:
            self.verifier.verify(body, headers)
        except Exception:
            with self.lock:
                self.bad += 1
            return
        with self.lock:
            self.at.setdefault(headers["webhook-id"], []).append(now)


def serve(receipts: Receipts) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            receipts.record({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def change(payer: uuid.UUID, developer: uuid.UUID) -> tuple[str, float]:
    """One money change (a credit to `payer`) with its event for `developer`, committed: (the event's id, when the
    commit returned)."""
    from echo_control import db, events, ledger

    with db.transaction() as conn:
        key = f"bench:{uuid.uuid4()}"
        ledger.credit(
            conn, payer, Decimal("1.00"), kind="admin_adjustment", key=key, reference_id=None, paid=Decimal(0)
        )
        data = {"paymentId": key, "amount": Decimal("1.00")}
        event_id = events.emit(conn, developer, events.PAYMENT_SUCCEEDED, data)
    return str(event_id), time.perf_counter()


def wait_for(receipts: Receipts, ids: set[str], timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        with receipts.lock:
            if ids <= receipts.at.keys():
                return max(receipts.at[i][0] for i in ids)
        time.sleep(0.01)
    return float("nan")


def latencies(receipts: Receipts, committed: dict[str, float]) -> list[float]:
    with receipts.lock:
        return sorted((receipts.at[i][0] - t) * 1000 for i, t in committed.items() if i in receipts.at)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] if values else float("nan")


def report(label: str, receipts: Receipts, committed: dict[str, float]) -> None:
    lat = latencies(receipts, committed)
    with receipts.lock:
        lost = len([i for i in committed if i not in receipts.at])
        duplicated = sum(len(receipts.at[i]) - 1 for i in committed if i in receipts.at)
    print(
        f"{label:<10} events {len(committed):>5}   commit→receipt ms: p50 {pct(lat, 50):7.1f}  p99 {pct(lat, 99):7.1f}"
        f"  max {max(lat, default=float('nan')):7.1f}  mean {statistics.fmean(lat) if lat else float('nan'):7.1f}"
        f"   lost {lost}  duplicated {duplicated}  badly signed {receipts.bad}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paced", type=int, default=300)
    parser.add_argument("--storm", type=int, default=1000)
    parser.add_argument("--writers", type=int, default=8)
    args = parser.parse_args()
    os.environ["ECHO_WEBHOOKS_ALLOW_PRIVATE"] = "true"  # the receiver is on loopback
    os.environ.setdefault("ECHO_DATA_DIR", tempfile.mkdtemp(prefix="echo-bench-webhooks-"))

    url, admin = fresh_database("echo_bench_webhooks")
    stop = threading.Event()
    try:
        from echo_control import db, developer_webhooks, webhook_delivery
        from echo_control.models import WebhookCreate

        user_id = uuid.uuid4()
        payers = [uuid.uuid4() for _ in range(PAYERS)]  # the storm's changes are many payers', its events one owner's
        with db.transaction() as conn:
            for someone in (user_id, *payers):
                conn.execute("INSERT INTO users (id, email) VALUES (%s, %s)", [someone, f"{someone}@example.com"])
                conn.execute("INSERT INTO balances (user_id) VALUES (%s)", [someone])
        receipts = Receipts()
        server = serve(receipts)
        endpoint = developer_webhooks.create_endpoint(
            user_id,
            WebhookCreate(url=f"http://127.0.0.1:{server.server_port}/hooks", events=["payment.succeeded"]),
        )
        from standardwebhooks import Webhook

        receipts.verifier = Webhook(endpoint.secret)
        deliverer = threading.Thread(target=webhook_delivery.run_local, args=(stop,), daemon=True)
        deliverer.start()
        time.sleep(0.5)

        committed: dict[str, float] = {}
        for _ in range(args.paced):
            event_id, at = change(user_id, user_id)
            committed[event_id] = at
            time.sleep(random.uniform(0.010, 0.030))
        wait_for(receipts, set(committed), 30)
        print(
            f"webhooks benchmark (local deliverer: batch {webhook_delivery.BATCH}, {webhook_delivery.WORKERS} senders)"
        )
        report("paced", receipts, committed)

        storm: dict[str, float] = {}
        started = time.perf_counter()
        with ThreadPoolExecutor(args.writers) as pool:
            for event_id, at in pool.map(lambda i: change(payers[i % PAYERS], user_id), range(args.storm)):
                storm[event_id] = at
        committed_in = max(storm.values()) - started
        last = wait_for(receipts, set(storm), 120)
        report("storm", receipts, storm)
        print(
            f"storm: {args.storm} changes committed in {committed_in:.2f}s ({args.storm / committed_in:.0f}/s, "
            f"{args.writers} writers); the last webhook arrived {last - started:.2f}s after the first commit began "
            f"({args.storm / (last - started):.0f} webhooks/s)"
        )
        time.sleep(1)  # the last attempts' outcomes are recorded just after their webhooks arrive
        row = (
            db.connection()
            .execute(
                "SELECT count(*) FILTER (WHERE status = 'succeeded') AS ok, "
                "count(*) FILTER (WHERE status <> 'succeeded') AS other, max(attempts) AS attempts "
                "FROM webhook_deliveries"
            )
            .fetchone()
        )
        print(f"deliveries: {row['ok']} succeeded, {row['other']} not, at most {row['attempts']} attempt(s) each")
        server.shutdown()
    finally:
        stop.set()
        from echo_control import db

        db.discard_connection()
        time.sleep(1.2)
        drop_database(admin, url)


if __name__ == "__main__":
    main()
