"""Every benchmark runs at a tiny size (a few users or thousand rows, one short round) against the current schema and
code: a migration or a change of the SQL, the handlers or the build that a benchmark depends on fails here, not the
next time someone measures. What a benchmark measures is not asserted (figures belong to bench/); what it checks
afterwards (balances reconciled, every endpoint answered) is."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = {
    "debits": ["--seconds", "0.3", "--rounds", "1", "--users", "4", "--callers", "2", "--processes", "1"],
    "holds": ["--seconds", "0.3", "--rounds", "1", "--users", "4", "--callers", "2", "--processes", "1"],
    "analytics": ["--rows", "3000", "--requests", "3"],
    "auto_top_up": ["--seconds", "0.3", "--rounds", "1", "--users", "4", "--callers", "2", "--processes", "1"],
}


@pytest.fixture(scope="module")
def tiny_runs(database_url: str) -> dict[str, str]:
    """The database benchmarks at once (each makes and drops its own database on the tests' server): their output."""
    env = {**os.environ, "DATABASE_URL": database_url}
    running = {
        name: subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, args in TINY.items()
    }
    outputs = {}
    for name, process in running.items():
        out, _ = process.communicate(timeout=240)
        assert process.returncode == 0, f"bench/{name}.py failed:\n{out}"
        outputs[name] = out
    return outputs


def test_debits_benchmark_runs_every_case_and_reconciles(tiny_runs: dict[str, str]) -> None:
    out = tiny_runs["debits"]
    for case in ("(a) many users", "(b) one hot user", "(c) one owner's customers", "(d) many users, app prices"):
        assert case in out, out
    assert "reconciliation after the run: 0 users off; 0 owners' earnings off; 0 calls' markup not earned" in out, out


def test_holds_benchmark_runs_every_case_and_reconciles(tiny_runs: dict[str, str]) -> None:
    out = tiny_runs["holds"]
    assert "(a) many users" in out and "(b) one hot user" in out, out
    assert "after the run: 0 balances off, 0 held sums off" in out, out


def test_auto_top_up_benchmark_runs_every_case_and_keeps_the_rules(tiny_runs: dict[str, str]) -> None:
    out = tiny_runs["auto_top_up"]
    for case in ("(a) no auto top-up", "(b) on, above threshold", "(c) below, one in flight"):
        assert case in out, out
    assert "same: True" in out, out  # a call that finds a charge in flight sends what any other call sends
    assert "4 charges (still one per (c) user); 0 users' balances off; 0 auto top-up rules broken" in out, out


def test_analytics_benchmark_loads_and_times_every_endpoint(tiny_runs: dict[str, str]) -> None:
    out = tiny_runs["analytics"]
    assert "loaded 3,000 transactions" in out, out
    for endpoint in ("usage (30 days)", "app list with totals", "history, first page", "earnings, all apps"):
        assert endpoint in out, out


def test_cold_start_benchmark_runs_on_the_built_function(database_url: str) -> None:
    """One fresh container of the priced call's function, on the build `make build-host` makes (shared with
    tests/test_built_functions.py)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cold_start.py"), "--runs", "1", "--only", "RecordTransactionFunction"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RecordTransactionFunction" in done.stdout and "INIT median of medians" in done.stdout, done.stdout
    assert "INIT + first call median of medians" in done.stdout, done.stdout
    where = done.stdout.split("where the imports of RecordTransactionFunction's start go", 1)[-1]
    assert re.search(r"^  psycopg\s+[\d.]+ ms", where, re.MULTILINE), done.stdout  # it says where the time goes


def test_long_constant_statements_are_parsed_once_per_container(database_url: str) -> None:
    """The debit and settle statements pass psycopg's 4 KB cache limit: db.connection raises it, so their
    placeholders are parsed once, not on every call. Fails if psycopg renames the setting (it is not public)."""
    import psycopg._queries

    from echo_control import db
    from echo_control.db import holds

    longest = max(len(db.RECORD_DEBIT.encode()), len(holds._SETTLE_HOLD.encode()))
    assert longest <= psycopg._queries.MAX_CACHED_STATEMENT_LENGTH
    statement = "SELECT %(n)s::int AS n" + " " * longest  # as long as ours, and harmless
    before = psycopg._queries._query2pg.cache_info().hits
    for n in range(3):
        assert db.connection().execute(statement, {"n": n}).fetchone() == {"n": n}
    assert psycopg._queries._query2pg.cache_info().hits >= before + 2
