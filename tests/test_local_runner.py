"""`make dev` as a newcomer runs it: the runner in its own process with its own embedded PostgreSQL, the
README's quickstart executed line for line against it, and nothing left running after it stops."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Runner:
    process: subprocess.Popen[str]
    url: str
    data_dir: Path

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=30)


def start_runner(data_dir: Path, **env: str) -> Runner:
    """`python -m local_runner` (what `make dev` runs) on a spare port, with the embedded PostgreSQL under
    data_dir; returns once it serves pages."""
    port = free_port()
    url = f"http://localhost:{port}"
    child_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HOST")}
    child_env.update({"PORT": str(port), "ECHO_DATA_DIR": str(data_dir), "ECHO_PUBLIC_URL": url, **env})
    process = subprocess.Popen(
        [sys.executable, "-m", "local_runner"], cwd=ROOT, env=child_env, stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the runner exited with {process.returncode}: {process.stdout.read()}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/sign-in", timeout=2) as page:
                if page.status == 200:
                    return Runner(process, url, data_dir)
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError("the runner did not serve /sign-in within 90 s")


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """The embedded server's postmaster (named by its data directory) and its children."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if cmdline and cmdline[0].endswith("/postgres") and str(data_dir / "postgres") in cmdline:
            found.append(process)
            found.extend(process.children(recursive=True))
    return found


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runner-data")


@pytest.fixture(scope="module")
def runner(data_dir: Path) -> Iterator[Runner]:
    running = start_runner(data_dir)
    yield running
    if running.process.poll() is None:
        running.stop(signal.SIGINT)


def test_the_runner_listens_on_loopback_only(runner: Runner) -> None:
    listening = [c.laddr for c in psutil.Process(runner.process.pid).net_connections("tcp") if c.status == "LISTEN"]
    assert [address.ip for address in listening] == ["127.0.0.1"]


def quickstart_block(index: int = 0) -> str:
    """A bash block of the README's Quickstart section (the first by default)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    assert len(found) > index, "the Quickstart section has the bash blocks"
    return str(found[index])


def test_the_readme_quickstart_works_line_for_line(runner: Runner) -> None:
    block = quickstart_block()
    assert block.startswith("ECHO=http://localhost:3000\n")
    script = block.replace("ECHO=http://localhost:3000", f"ECHO={runner.url}", 1)
    # Every command's output, so a failure shows which line went wrong; -e stops at the first failing curl.
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-x", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The last three lines: the call recorded, the app's usage, the balance ($10 paid, that call spent).
    call, usage, balance = (json.loads(line) for line in done.stdout.strip().splitlines()[-3:])
    assert call["model"] == "gpt-4o-mini" and Decimal(call["cost"]) > 0
    assert usage["calls"] == 1 and usage["cost"] == call["cost"]
    assert Decimal(balance["totalPaid"]) == Decimal(10)
    assert Decimal(balance["balance"]) == Decimal(10) - Decimal(call["cost"])


def test_the_readme_customers_and_payouts_work_line_for_line(runner: Runner) -> None:
    """The Quickstart's second block, after its first: a customer's call earns the owner the markup, which the
    mock onboarding and a payout take all the way to a (mock) transfer."""
    script = (quickstart_block(0) + quickstart_block(1)).replace("ECHO=http://localhost:3000", f"ECHO={runner.url}", 1)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-x", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    opened, call, customer, payout, earnings = (json.loads(line) for line in done.stdout.strip().splitlines()[-5:])
    assert opened == {"acceptsCustomers": True, "markup": "1.5000"}
    assert call == {"providerCost": "30.000000", "markupAmount": "15.000000", "cost": "45.000000"}
    assert customer == {"email": "customer@example.com", "calls": 1, "spent": "45.000000"}
    assert payout == {"amount": "15.000000", "status": "paid"}
    assert earnings == {"available": "0.000000", "paidOut": "15.000000", "lifetime": "15.000000"}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_the_runner_stops_its_postgres(runner: Runner, data_dir: Path, signum: int) -> None:
    if signum == signal.SIGTERM:
        # A holder that died without cleanup (kill -9) is still listed by pgserver; it must not keep the
        # server alive.
        dead = subprocess.Popen(["true"])
        dead.wait()
        holders = data_dir / "postgres" / ".handle_pids.json"
        holders.write_text(json.dumps([dead.pid, *json.loads(holders.read_text())]))
        running = start_runner(data_dir)
    else:
        running = runner
    try:
        assert postgres_processes(data_dir), "the embedded PostgreSQL runs while the runner does"
        assert running.stop(signum) == 0
        psutil.wait_procs(postgres_processes(data_dir), timeout=10)
        assert postgres_processes(data_dir) == []
    finally:
        if running.process.poll() is None:
            running.process.kill()
