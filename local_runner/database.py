"""The database for local runs and tests: DATABASE_URL if set, else an embedded real PostgreSQL (pgserver)."""

import atexit
import fcntl
import os
import subprocess
import warnings
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import psycopg

from local_runner.template import ROOT

EMBEDDED_DIR = ROOT / ".data" / "postgres"
embedded_server: Any = None  # the pgserver handle this process holds, if it started or joined one
# A shared lock on a file beside the data directory, held while this process uses the embedded server. The
# kernel drops it when a process ends however it ends (kill -9 included), so "is anyone else still using the
# server?" is one non-blocking exclusive lock: no list of pids that a dead or recycled pid can corrupt.
_users_lock: IO[bytes] | None = None


def embedded_server_url(database: str, data_dir: Path = EMBEDDED_DIR) -> str:
    """Starts (or reuses) the embedded server under data_dir and makes sure `database` exists."""
    global embedded_server, _users_lock
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    users_lock = open(data_dir.with_name(data_dir.name + ".users.lock"), "ab")  # noqa: SIM115 (held for life)
    fcntl.flock(users_lock, fcntl.LOCK_SH)  # waits while a last user is stopping the server
    _users_lock = users_lock
    atexit.register(stop_embedded_server)
    # Stopping is ours (stop_embedded_server), not pgserver's: it counts users in a file of pids.
    embedded_server = pgserver.get_server(data_dir, cleanup_mode=None)
    create_database(embedded_server.get_uri("postgres"), database)
    return str(embedded_server.get_uri(database))


def stop_embedded_server() -> None:
    """Stops the embedded server unless another live process (a test run, a second runner) still uses it."""
    global embedded_server, _users_lock
    server, users_lock = embedded_server, _users_lock
    embedded_server = _users_lock = None
    if users_lock is None:
        return
    with users_lock:
        # Unlock, then try exclusively: of two users leaving at once, at least one gets it and stops the server.
        fcntl.flock(users_lock, fcntl.LOCK_UN)
        try:
            fcntl.flock(users_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # still in use; its last user stops it
        if server is not None:
            _stop_postgres(server)


def _stop_postgres(server: Any) -> None:
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]
    from pgserver.utils import PostmasterInfo

    postmaster = PostmasterInfo.read_from_pgdata(server.pgdata)
    if postmaster is None or postmaster.process is None or not postmaster.process.is_running():
        return
    try:
        pg_ctl(["-w", "stop"], pgdata=server.pgdata, user=server.system_user)
    except subprocess.CalledProcessError:  # pg_ctl could not: end the postmaster itself
        postmaster.process.terminate()
        postmaster.process.wait(10)


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
