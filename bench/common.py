"""Shared set-up for benchmarks: a fresh database on DATABASE_URL's server or the embedded one, and pgbench."""

import os
import re
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


def one_line(sql: str) -> str:
    """A statement on one line, as pgbench wants it: its `--` comments would swallow the rest of the line."""
    return " ".join(re.sub(r"--[^\n]*", "", sql).split())


def run_pgbench(url: str, script: Path, clients: int, seconds: float, defines: dict[str, str]) -> float:
    # pgbench times whole seconds; a shorter run (the tests' tiny size) is a fixed number of transactions instead.
    length = ["-T", str(round(seconds))] if seconds >= 1 else ["-t", "20"]
    args = [pgbench_binary(), "-n", "-c", str(clients), "-j", "2", *length, "-f", str(script)]
    for key, value in defines.items():
        args += ["-D", f"{key}={value}"]
    done = subprocess.run(args, env=pgbench_env(url), capture_output=True, text=True, check=False)
    if done.returncode != 0:  # say why: pgbench names the statement and the server's error
        raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stderr[-2000:]}")
    out = done.stdout
    line = next(line for line in out.splitlines() if line.startswith("tps ="))
    return float(line.split("=")[1].split()[0])


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_case(label: str, ours: list[float], pgbench: list[float]) -> None:
    """A case's medians and ratio, then each round's rates, with the load average the rounds ran at."""
    a, b = median(ours), median(pgbench)
    print(f"{label:<28}{a:>15.0f}{b:>15.0f}{a / b:>8.2f}{os.getloadavg()[0]:>7.1f}", flush=True)
    print(f"{'':<28}{' '.join(f'{x:.0f}' for x in ours):>15}{' '.join(f'{x:.0f}' for x in pgbench):>15}")


# --- our side: the real authorizer and handlers, run as Lambda scales them --------------------------------------


def api_event(path: str, resource: str, key: str, body: str, path_parameters: dict | None = None) -> dict:
    """A POST as API Gateway hands it to a function, with an API key."""
    import uuid as _uuid

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "pathParameters": path_parameters,
        "body": body,
        "isBase64Encoded": False,
        "requestContext": {
            "requestId": str(_uuid.uuid4()),
            "stage": "bench",
            "resourcePath": resource,
            "httpMethod": "POST",
        },
    }


# API Gateway's authorizer cache, as `--authorizer-ttl` asks: the policy for an Authorization header is reused for
# that many seconds (0, the template's ReauthorizeEvery, calls the authorizer on every request).
AUTHORIZER_TTL_VARIABLE = "BENCH_AUTHORIZER_TTL"
_policies: dict[str, tuple[float, dict]] = {}


def through_authorizer(gateway, resource: str, event: dict) -> dict:  # type: ignore[no-untyped-def]
    """The request as API Gateway makes it: the authorizer (or its cached policy), then the route's function with
    its context; the function's answer must be a 201."""
    import time

    route = next(r for r in gateway.api.routes if r.path == resource and r.method == "POST")
    ttl = float(os.environ.get(AUTHORIZER_TTL_VARIABLE) or 0)
    identity = event["headers"]["Authorization"]
    cached = _policies.get(identity)
    if cached and cached[0] > time.monotonic():
        policy = cached[1]
    else:
        authorizer = gateway.functions[gateway.api.authorizer_dir]
        policy = authorizer.invoke({"type": "REQUEST", "methodArn": "arn:aws:execute-api:x:0:a/b/POST/x", **event})
        if ttl:
            _policies[identity] = (time.monotonic() + ttl, policy)
    event["requestContext"]["authorizer"] = {**policy["context"], "principalId": policy["principalId"]}
    result = gateway.functions[route.code_dir].invoke(event)
    if result["statusCode"] != 201:
        raise RuntimeError(result["body"])
    return result


def add_authorizer_ttl_argument(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument(
        "--authorizer-ttl",
        type=float,
        default=0,
        help="seconds API Gateway would cache the authorizer's answer per key (the template's is 0: no cache)",
    )


def use_authorizer_ttl(seconds: float) -> None:
    """Read by every caller process (they inherit the environment)."""
    os.environ[AUTHORIZER_TTL_VARIABLE] = str(seconds)


def _thread(gateway, work, keys: list[str], deadline: float, counts: list[int], index: int) -> None:  # type: ignore[no-untyped-def]
    import random
    import time

    done = 0
    while time.monotonic() < deadline:
        work(gateway, random.choice(keys))
        done += 1
    counts[index] = done


def _process(url: str, threads: int, jobs, ready, results) -> None:  # type: ignore[no-untyped-def]
    """One container process: runs each job `(work, keys, seconds)` it is sent on `threads` threads, after a warm-up
    and once every process is warm, and reports the units done; None ends it."""
    import threading
    import time

    os.environ["DATABASE_URL"] = url
    os.environ.update(BENCH_ENV)
    from local_runner.server import LocalApiGateway

    gateway = LocalApiGateway()
    while (job := jobs.get()) is not None:
        work, keys, seconds = job
        counts = [0] * threads

        def run(deadline: float) -> None:
            workers = [
                threading.Thread(target=_thread, args=(gateway, work, keys, deadline, counts, i))  # noqa: B023
                for i in range(threads)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()

        run(time.monotonic() + 0.3)  # warm every thread's containers and connection before the clock starts
        ready.wait()  # every process warm: all start at once
        run(time.monotonic() + seconds)
        results.put(sum(counts))


class Callers:
    """Our side, run as Lambda scales: `processes` processes (containers) of callers/processes threads, each thread
    with its own connection; started once and reused by every case and round (a process takes seconds to start)."""

    def __init__(self, url: str, callers: int, processes: int) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.results = ctx.Queue()
        self.ready = ctx.Barrier(processes)
        self.jobs = [ctx.Queue() for _ in range(processes)]
        threads = max(1, callers // processes)
        self.procs = [
            ctx.Process(target=_process, args=(url, threads, jobs, self.ready, self.results), daemon=True)
            for jobs in self.jobs
        ]
        for proc in self.procs:
            proc.start()

    def rate(self, work, keys: list[str], seconds: float) -> float:  # type: ignore[no-untyped-def]
        """Units of `work(gateway, key)` per second, all callers at once. `work` is a module-level function (it
        crosses to the processes by name)."""
        for jobs in self.jobs:
            jobs.put((work, keys, seconds))
        return sum(self.results.get(timeout=180) for _ in self.procs) / seconds

    def __enter__(self) -> "Callers":
        return self

    def __exit__(self, *exc: object) -> None:
        for jobs in self.jobs:
            jobs.put(None)
        for proc in self.procs:
            proc.join(timeout=30)
