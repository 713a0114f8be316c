"""Shared set-up for benchmarks: a fresh database on DATABASE_URL's server or the embedded one, and pgbench."""

import os
import shutil
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]

BENCH_ENV = {
    "POWERTOOLS_SERVICE_NAME": "echo-control",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
    "ECHO_AUTH_MODE": "dev",
    "ECHO_RATE_LIMIT_PER_MINUTE": "1000000000",  # measure the debit path, not the limiter's refusals
}


def fresh_database(prefix: str) -> tuple[str, str]:
    """(url, admin url): a new database with migrations applied."""
    os.environ.update(BENCH_ENV)
    from local_runner import database

    server = os.environ.get("DATABASE_URL")
    admin = database.with_database(server, "postgres") if server else database.embedded_server_url("postgres")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    database.create_database(admin, name)
    url = database.with_database(admin, name)
    os.environ["DATABASE_URL"] = url
    from echo_control import db

    db.apply_migrations(url)
    return url, admin


def drop_database(admin: str, url: str) -> None:
    import psycopg

    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))


def pgbench_binary() -> str:
    import pgserver

    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"
    return str(bundled) if bundled.exists() else (shutil.which("pgbench") or "pgbench")


def pgbench_env(url: str) -> dict[str, str]:
    """libpq environment variables for pgbench from a connection string."""
    import psycopg

    parts = psycopg.conninfo.conninfo_to_dict(url)
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "dbname": "PGDATABASE"}
    return {**os.environ, **{names[k]: str(v) for k, v in parts.items() if k in names and v is not None}}


def run_pgbench(url: str, script: Path, clients: int, seconds: int, defines: dict[str, str]) -> float:
    args = [pgbench_binary(), "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), "-f", str(script)]
    for key, value in defines.items():
        args += ["-D", f"{key}={value}"]
    out = subprocess.run(args, env=pgbench_env(url), capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("tps ="))
    return float(line.split("=")[1].split()[0])


def median(values: list[float]) -> float:
    return statistics.median(values)
