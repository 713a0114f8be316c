"""The database for local runs and tests: DATABASE_URL if set, else an embedded real PostgreSQL (pgserver)."""

import json
import os
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from local_runner.template import ROOT

EMBEDDED_DIR = ROOT / ".data" / "postgres"
embedded_server: Any = None  # the pgserver handle this process holds, if it started or joined one


def embedded_server_url(database: str, data_dir: Path = EMBEDDED_DIR) -> str:
    """Starts (or reuses) the embedded server under data_dir and makes sure `database` exists."""
    global embedded_server
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    forget_dead_handles(data_dir)
    embedded_server = pgserver.get_server(data_dir, cleanup_mode="stop")
    create_database(embedded_server.get_uri("postgres"), database)
    return str(embedded_server.get_uri(database))


def forget_dead_handles(data_dir: Path) -> None:
    """pgserver stops the server when the last process holding it exits, counting holders in a file; a
    holder killed without cleanup stays listed forever and the server would never stop again."""
    import psutil
    from pgserver.postgres_server import PostgresServer

    holders = data_dir / ".handle_pids.json"
    with PostgresServer._lock:  # the lock pgserver takes around its own reads and writes of the file
        if holders.exists():
            alive = [pid for pid in json.loads(holders.read_text() or "[]") if psutil.pid_exists(pid)]
            holders.write_text(json.dumps(alive))


def stop_embedded_server() -> None:
    """Stops the embedded server unless another live process (a test run, a second runner) still uses it."""
    global embedded_server
    if embedded_server is not None:
        embedded_server.cleanup()
        embedded_server = None


def with_database(url: str, database: str) -> str:
    """The same server's connection string for another database (URL or key=value input)."""
    parts = {k: v for k, v in psycopg.conninfo.conninfo_to_dict(url).items() if v is not None}
    parts["dbname"] = database
    return psycopg.conninfo.make_conninfo("", **parts)


def create_database(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(database)))


def ensure_database() -> str:
    """DATABASE_URL, or the embedded server's URL (exported as DATABASE_URL); migrations applied."""
    data_dir = Path(os.environ["ECHO_DATA_DIR"]) / "postgres" if os.environ.get("ECHO_DATA_DIR") else EMBEDDED_DIR
    url = os.environ.get("DATABASE_URL") or embedded_server_url("echo", data_dir)
    os.environ["DATABASE_URL"] = url
    from echo_control import config, db

    config.reload_settings()  # the settings were read before the embedded server existed
    db.apply_migrations(url)
    return url


DEMO_EMAIL = "demo@example.com"


def load_demo_data() -> None:
    """A demo user with an app, credits and some metered calls, loaded once (sign in as demo@example.com)."""
    from echo_control import db, ledger

    user = db.user_for_clerk_id(f"dev_{DEMO_EMAIL}", DEMO_EMAIL, "Demo Developer")
    assert user is not None
    if db.apps_with_totals(user["id"]):
        return
    app = db.insert_app(user["id"], "Demo chat app", "A sample app with some usage", Decimal("1.25"))
    with db.transaction() as conn:  # not a payment: the balance page lists it, with its reason, as a credit
        db.apply_entry(
            conn,
            user_id=user["id"],
            kind="admin_adjustment",
            amount=Decimal("25"),
            idempotency_key="demo:welcome-credit",
            reason="Welcome credit: $25 to try the demo",
        )
    calls = [
        ("gpt-4o", 1200, 350),
        ("gpt-4o-mini", 5400, 900),
        ("claude-3-5-sonnet", 2100, 640),
        ("gpt-4o", 800, 210),
        ("gemini-2.0-flash", 3000, 1200),
    ]
    from echo_control.identity import Caller
    from echo_control.models import TransactionCreate

    # Metered exactly as the API meters them: priced from genai-prices' data, with the app's markup.
    owner = Caller(user["id"], DEMO_EMAIL, "user", "apiKey", echo_app_id=app["id"], app_markup=app["markup"])
    for model, tokens_in, tokens_out in calls:
        call = TransactionCreate(model=model, input_tokens=tokens_in, output_tokens=tokens_out, metadata={"demo": True})
        ledger.record_transaction(owner, call, None)
