"""Every function as built for Lambda (`sam build`, for this machine's architecture) runs its sample event under
the Runtime Interface Emulator, with only the built layer and the runtime's packages on its path: a packaging
mistake (a missing dependency, a wrong layer path, an import only the source tree satisfies) fails here."""

import json
import subprocess
from pathlib import Path

import pytest

from local_runner import emulator, samples, template
from tests.test_events import AUTO_TOP_UP_COUNTS, EVENTS, EXPECTED_STATUS, HOUSEKEEPING_COUNTS, NON_HTTP_RESULTS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built() -> None:
    """The host build and the runtime's packages, made (or found up to date) by the Makefile."""
    subprocess.run(["make", "-s", "build-host", ".venv/lambda-runtime/.installed"], cwd=ROOT, check=True)
    samples.load_sample_rows()


def test_the_build_holds_the_layer_and_every_function(built: None) -> None:
    assert (emulator.LAYER_PYTHON / "echo_control" / "__init__.py").exists()
    assert list((emulator.LAYER_PYTHON / "echo_control").glob("__pycache__/*.pyc")), "the layer ships bytecode"
    for logical_id in template.load().functions:
        assert (emulator.BUILD_DIR / logical_id / "app.py").exists(), logical_id


LAYER_BUDGET_MB = 100  # Lambda allows 250 MB unzipped for a function and its layers together
# What Lambda's python3.12 runtime provides (requirements-lambda.in): a copy in the layer would only shadow it.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "awslambdaric")


def test_the_built_layer_stays_within_its_budget_and_leaves_the_runtimes_packages_out(built: None) -> None:
    files = [path for path in emulator.LAYER_PYTHON.rglob("*") if path.is_file()]
    size_mb = sum(path.stat().st_size for path in files) / 1e6
    assert size_mb < LAYER_BUDGET_MB, f"the built layer is {size_mb:.0f} MB"
    bundled = {path.name.split("-")[0].removesuffix(".py").lower() for path in emulator.LAYER_PYTHON.iterdir()}
    assert bundled.isdisjoint(RUNTIME_PACKAGES), bundled & set(RUNTIME_PACKAGES)
    assert "genai_prices" not in bundled  # prices come from the snapshot (echo_control/prices/)


@pytest.mark.parametrize("event_file", EVENTS, ids=[e.stem for e in EVENTS])
def test_built_function_answers_its_sample_event(
    event_file: Path, built: None, live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    logical_id = next(lid for lid, code in template.load().functions.items() if code.name == event_file.stem)
    monkeypatch.setenv("ECHO_PUBLIC_URL", live_server)  # where the mock checkout delivers its webhook
    event = samples.ready_event(event_file.stem, json.loads(event_file.read_text()))
    with emulator.container(logical_id) as function:
        result = function.invoke(event)
    assert result.init_ms is not None, result.log  # a cold start, reported by the emulator
    response = result.response
    assert isinstance(response, dict) and "errorType" not in response, result.log
    if event_file.stem == "authorizer":
        assert response["policyDocument"]["Statement"][0]["Effect"] == "Allow"
        assert response["context"]["userId"] == str(samples.SAMPLE_USER)
    elif event_file.stem == "migrate":
        assert response == {"applied": []}
    elif event_file.stem == "run_housekeeping":
        assert response.keys() >= HOUSEKEEPING_COUNTS and response["complete"] in (True, False), response
    elif event_file.stem == "charge_auto_top_ups":
        assert response.keys() == AUTO_TOP_UP_COUNTS and all(isinstance(n, int) for n in response.values()), response
    elif event_file.stem in NON_HTTP_RESULTS:
        assert response == NON_HTTP_RESULTS[event_file.stem], result.log
    else:
        assert response["statusCode"] == EXPECTED_STATUS[event_file.stem], (response.get("body"), result.log)


RESTORE_PROBE = """
import json
from awslambdaric import lambda_runtime_hooks_runner  # what the runtime runs around a SnapStart snapshot
from echo_control import db

before = db.connection()
pid = before.info.backend_pid
lambda_runtime_hooks_runner.run_after_restore()
after = db.connection()
print(json.dumps({"closed": before.closed, "same": after is before, "new_pid": after.info.backend_pid != pid}))
"""


def test_the_built_layer_registers_its_restore_hook_with_lambdas_runtime(built: None) -> None:
    """With the runtime's packages and the built layer only, as on Lambda: the hook is registered on import and the
    runtime's after-restore runner drops the connection made before it."""
    logical_id = "GetMeFunction"
    done = subprocess.run(
        [str(emulator.RUNTIME_PYTHON), "-c", RESTORE_PROBE],
        cwd=emulator.BUILD_DIR / logical_id,
        env=emulator.function_environment(logical_id),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout.splitlines()[-1]) == {"closed": True, "same": False, "new_pid": True}


def test_a_built_function_starts_without_scanning_for_pydantic_plugins(built: None) -> None:
    """template.yaml's PYDANTIC_DISABLE_PLUGINS reaches the function (the emulator sets Globals' plain variables), and
    pydantic then never reads every package's entry points while the function's models are defined."""
    logical_id = "GetMeFunction"
    env = emulator.function_environment(logical_id, sam_local=False)
    assert env["PYDANTIC_DISABLE_PLUGINS"] == "__all__" and env["POWERTOOLS_SERVICE_NAME"] == "echo-control"
    probe = "import app; from pydantic.plugin import _loader; print(_loader._plugins is None)"
    for setting, scanned in (("__all__", False), ("", True)):
        done = subprocess.run(
            [str(emulator.RUNTIME_PYTHON), "-c", probe],
            cwd=emulator.BUILD_DIR / logical_id,
            env={**env, "PYDANTIC_DISABLE_PLUGINS": setting},
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.strip() == str(not scanned), setting


START_PROBE = """
import json, sys
import awslambdaric.bootstrap
import app
from echo_control import deferred_imports

started = {"loaded": sorted(m for m in UNUSED if m in sys.modules),
           "opened": [p for p in deferred_imports.DEFERRED if deferred_imports.is_open(p)]}
import asyncio, asyncio.exceptions  # what the start left unopened still works, with the very same objects
from aws_lambda_powertools.event_handler import AppSyncResolver
from aws_lambda_powertools.event_handler.appsync import AppSyncResolver as Defined
from aws_lambda_powertools.utilities import data_classes

asyncio.run(asyncio.sleep(0))
same = [asyncio.CancelledError is asyncio.exceptions.CancelledError, AppSyncResolver is Defined,
        data_classes.SQSEvent.__module__.endswith("sqs_event")]
opened_later = all(map(deferred_imports.is_open, deferred_imports.DEFERRED))
print(json.dumps({**started, "same": same, "opened_later": opened_later}))
"""
# What RecordTransaction never uses: the rest of asyncio (its event loop, ssl), Powertools' other resolvers and
# event classes, and the models of other routes.
UNUSED = (
    "asyncio.base_events",
    "aws_lambda_powertools.event_handler.appsync",
    "aws_lambda_powertools.event_handler.bedrock_agent",
    "aws_lambda_powertools.utilities.data_classes.sqs_event",
    "echo_control.models.apps",
    "echo_control.models.webhooks",
)


def test_a_built_function_starts_without_the_packages_it_never_uses(built: None) -> None:
    """echo_control.deferred_imports and the models' lazy names keep a function's start to what it uses (cold
    starts, bench/cold_start.py); whatever is taken later loads then, as the same objects."""
    logical_id = "RecordTransactionFunction"
    done = subprocess.run(
        [str(emulator.RUNTIME_PYTHON), "-c", f"UNUSED = {UNUSED!r}\n{START_PROBE}"],
        cwd=emulator.BUILD_DIR / logical_id,
        env=emulator.function_environment(logical_id, sam_local=False),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "loaded": [],
        "opened": [],
        "same": [True, True, True],
        "opened_later": True,
    }
