"""Runs a built function (the `sam build` output for this machine, `make build-host`) as Lambda runs it: under the
Runtime Interface Emulator that ships inside the SAM CLI, with awslambdaric and boto3 as the only packages besides
the built layer, which is on the path where Lambda mounts it (/opt/python). No Docker needed.

`python -m local_runner.emulator <LogicalId> <event.json>` (make invoke) prints the response and the emulator's
INIT and START/END/REPORT lines (INIT REPORT gives a cold start's INIT duration).
"""

import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_runner import template
from local_runner.template import ROOT

HOST_ARCH = {"aarch64": "arm64"}.get(platform.machine(), platform.machine())
BUILD_DIR = ROOT / ".aws-sam" / f"build-{HOST_ARCH}"
LAYER_PYTHON = BUILD_DIR / "CommonLayer" / "python"
RUNTIME_PYTHON = ROOT / ".venv" / "lambda-runtime" / "bin" / "python"
SAM_PACKAGES = ROOT / ".venv" / "sam-cli" / "lib" / "python3.12" / "site-packages"
RIE = SAM_PACKAGES / "samcli" / "local" / "rapid" / f"aws-lambda-rie-{HOST_ARCH}"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
# Variables passed on from the caller's environment (the rest of it stays out, as in Lambda).
PASSED_ON = ("DATABASE_URL", "ECHO_", "STRIPE_", "POWERTOOLS_")


@dataclass
class Invocation:
    response: Any
    log: str  # what the function and the emulator printed for this invocation

    @property
    def init_ms(self) -> float | None:
        """A cold start's INIT duration as the emulator reports it (None when the container was warm).

        The emulator's REPORT line carries no real Init Duration; its INIT REPORT line does."""
        found = re.search(r"INIT REPORT\(durationMs: ([\d.]+)\)", self.log)
        return float(found.group(1)) if found else None

    @property
    def duration_ms(self) -> float:
        found = re.search(r"\tDuration: ([\d.]+) ms", self.log)
        return float(found.group(1)) if found else float("nan")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def function_environment(logical_id: str, *, sam_local: bool = True) -> dict[str, str]:
    """What Lambda sets for the function, plus the local configuration (database, ECHO_* …) passed on.

    sam_local marks the run as local, as `sam local invoke` does (AWS_SAM_LOCAL); without it the function sees
    a plain Lambda environment (the cold-start bench measures that, tracing on as deployed)."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PYTHONPATH": str(LAYER_PYTHON),
        "PYTHONDONTWRITEBYTECODE": "1",  # Lambda's file system is read-only: the build stays as built
        "LAMBDA_TASK_ROOT": str(BUILD_DIR / logical_id),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        **template.global_environment(),
    }
    if sam_local:
        env["AWS_SAM_LOCAL"] = "true"
    env.update({k: v for k, v in os.environ.items() if k.startswith(PASSED_ON)})
    return env


class Container:
    """One function container: the emulator with the function's built code, started by start()."""

    def __init__(self, logical_id: str, env: dict[str, str]) -> None:
        code_dir = BUILD_DIR / logical_id
        if not (code_dir / "app.py").exists():
            raise SystemExit(f"{code_dir} is not built: run make build-host")
        self.port = _free_port()
        runtime_api = f"127.0.0.1:{_free_port()}"
        self._log_path = code_dir.parent / f".{logical_id}.{self.port}.log"
        self._log = self._log_path.open("w+")
        self._process = subprocess.Popen(  # noqa: S603 - our own build and the SAM CLI's emulator
            [
                str(RIE),
                "--runtime-interface-emulator-address",
                f"127.0.0.1:{self.port}",
                "--runtime-api-address",
                runtime_api,
                str(RUNTIME_PYTHON),
                "-m",
                "awslambdaric",
                "app.lambda_handler",
            ],
            cwd=code_dir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._read = 0
        deadline = time.monotonic() + 10
        while True:  # the emulator listens at once; the function's INIT runs on the first invocation
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise RuntimeError(f"the emulator did not start:\n{self._new_log()}") from None
                time.sleep(0.02)

    def _new_log(self) -> str:
        self._log.flush()
        text = self._log_path.read_text()
        new, self._read = text[self._read :], len(text)
        return new

    def invoke(self, event: dict[str, Any], *, trace_header: str | None = None) -> Invocation:
        headers = {"Content-Type": "application/json"}
        if trace_header:
            headers["X-Amzn-Trace-Id"] = trace_header
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{INVOKE_PATH}", data=json.dumps(event).encode(), headers=headers
        )
        with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310 - loopback only
            response = json.loads(reply.read() or b"null")
        deadline = time.monotonic() + 5
        log = self._new_log()
        while "REPORT RequestId" not in log and time.monotonic() < deadline:
            time.sleep(0.01)
            log += self._new_log()
        return Invocation(response, log)

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()
        self._log_path.unlink(missing_ok=True)


@contextmanager
def container(logical_id: str, *, sam_local: bool = True) -> Iterator[Container]:
    started = Container(logical_id, function_environment(logical_id, sam_local=sam_local))
    try:
        yield started
    finally:
        started.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: make invoke FN=<LogicalId> EVENT=events/<file>.json", file=sys.stderr)
        return 2
    logical_id, event_file = argv
    from local_runner import __main__ as runner
    from local_runner import database, lambdas, samples  # lambdas: the source layer on the path, for the database

    assert lambdas.LAYER_DIR.exists()

    runner.configure_environment()
    database.ensure_database()
    samples.load_sample_rows()
    event = samples.ready_event(Path(event_file).stem, json.loads(Path(event_file).read_text()))
    with container(logical_id) as function:
        result = function.invoke(event)
    print(result.log.rstrip())
    print(json.dumps(result.response, indent=2))
    status = result.response.get("statusCode") if isinstance(result.response, dict) else None
    return 1 if (isinstance(status, int) and status >= 500) or "errorType" in str(result.response)[:200] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
