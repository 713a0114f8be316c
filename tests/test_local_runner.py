"""`make dev` as a newcomer runs it: the runner in its own process with its own embedded PostgreSQL, the
README's quickstart executed line for line against it, and nothing left running after it stops."""

import contextlib
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
            with contextlib.suppress(psutil.NoSuchProcess):  # it may be stopping while we look
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


# --- stopping: nothing left running, however it is stopped -------------------------------------------


@pytest.fixture(scope="module")
def stop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory of its own for the stopping tests: each one starts its runners on it and must leave
    its server stopped."""
    return tmp_path_factory.mktemp("stop-data")


@pytest.fixture
def runners(stop_dir: Path) -> Iterator[list[Runner]]:
    """The runners a test starts on stop_dir; whatever it leaves running is killed afterwards."""
    started: list[Runner] = []
    yield started
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


def gone(data_dir: Path) -> list[psutil.Process]:
    """The embedded server's processes still running a while after its runner exited (none, if it stopped)."""
    psutil.wait_procs(postgres_processes(data_dir), timeout=20)
    return postgres_processes(data_dir)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"])
def test_stopping_the_runner_stops_its_postgres(stop_dir: Path, runners: list[Runner], signum: int) -> None:
    runners.append(running := start_runner(stop_dir))
    assert postgres_processes(stop_dir), "the embedded PostgreSQL runs while the runner does"
    assert running.stop(signum) == 0
    assert gone(stop_dir) == []


def test_a_runner_killed_without_cleanup_does_not_keep_the_server_alive(stop_dir: Path, runners: list[Runner]) -> None:
    runners.append(killed := start_runner(stop_dir))
    killed.stop(signal.SIGKILL)  # no cleanup at all: the server stays up, as after a crash
    assert postgres_processes(stop_dir)
    # Its pid soon belongs to another process (pids recycle fast on a busy machine): pgserver's list of its
    # users' pids names it still, and that must not keep the server alive.
    with subprocess.Popen(["sleep", "60"]) as recycled:
        holders = stop_dir / "postgres" / ".handle_pids.json"
        holders.write_text(
            json.dumps([recycled.pid if pid == killed.process.pid else pid for pid in json.loads(holders.read_text())])
        )
        runners.append(last := start_runner(stop_dir))
        assert last.stop(signal.SIGTERM) == 0
        assert gone(stop_dir) == []
        recycled.kill()


def test_the_server_stops_with_the_last_runner_using_it(stop_dir: Path, runners: list[Runner]) -> None:
    runners.append(first := start_runner(stop_dir))
    runners.append(second := start_runner(stop_dir))
    assert first.stop(signal.SIGTERM) == 0
    with urllib.request.urlopen(f"{second.url}/sign-in", timeout=10) as page:  # still served, from its database
        assert page.status == 200
    assert postgres_processes(stop_dir)
    assert second.stop(signal.SIGINT) == 0
    assert gone(stop_dir) == []


def test_repeated_signals_during_shutdown_still_stop_postgres(stop_dir: Path, runners: list[Runner]) -> None:
    """`kill -TERM -- -PGID` reaches make and the runner, an impatient user presses Ctrl-C again: signals keep
    coming while the runner stops PostgreSQL, and none of them may cut that short."""
    runners.append(running := start_runner(stop_dir))
    signals = [signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    sent = 0
    while running.process.poll() is None and sent < 2000:
        running.process.send_signal(signals[sent % len(signals)])
        sent += 1
        time.sleep(0.005)
    assert running.process.wait(timeout=60) == 0
    assert sent > 1, "more than one signal reached the runner while it stopped"
    assert gone(stop_dir) == []


def run_make_dev(**env: str) -> subprocess.CompletedProcess[str]:
    """`python -m local_runner` as `make dev` runs it, with env's variables, to its end."""
    child_env = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST", "DATABASE_URL")}
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "local_runner"], cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("port", ["abc", "0", "70000", "-1"])
def test_a_port_that_is_not_a_port_is_one_clear_line(port: str) -> None:
    done = run_make_dev(PORT=port)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [f"PORT must be a port number from 1 to 65535, not {port!r}"]
    assert "Echo Control on" not in done.stdout


def test_a_port_in_use_fails_before_saying_where_it_runs(runner: Runner) -> None:
    taken = runner.url.rsplit(":", 1)[1]
    done = run_make_dev(PORT=taken, ECHO_DATA_DIR=str(runner.data_dir))
    assert done.returncode != 0
    assert "Echo Control on" not in done.stdout
    assert f"Port {taken} is in use" in done.stderr
    assert "Traceback" not in done.stderr
    with urllib.request.urlopen(f"{runner.url}/sign-in", timeout=10) as page:  # and it left the server running
        assert page.status == 200
