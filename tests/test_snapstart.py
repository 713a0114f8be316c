"""SnapStart, opt-in: the template's switch and what SAM makes of it, and the database connection a snapshot may
hold, dropped after a restore."""

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from echo_control import db
from local_runner import template

ROOT = Path(__file__).resolve().parent.parent
SAM_PYTHON = ROOT / ".venv" / "sam-cli" / "bin" / "python"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=template._CfnLoader)  # noqa: S506 - SafeLoader


def functions(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in doc["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


# --- the template ----------------------------------------------------------------------------------------------


def test_snapstart_is_a_parameter_off_by_default_that_sets_every_functions_snapstart(doc: dict[str, Any]) -> None:
    parameter = doc["Parameters"]["SnapStart"]
    assert parameter["Default"] == "Disabled" and parameter["AllowedValues"] == ["Enabled", "Disabled"]
    assert doc["Conditions"]["SnapStartEnabled"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "Enabled"]}
    function_globals = doc["Globals"]["Function"]
    assert function_globals["SnapStart"] == {
        "Fn::If": ["SnapStartEnabled", {"ApplyOn": "PublishedVersions"}, {"Ref": "AWS::NoValue"}]
    }
    # SnapStart applies to published versions only: every function is invoked through its alias
    assert function_globals["AutoPublishAlias"] == "live"
    for name, resource in functions(doc).items():
        assert "SnapStart" not in resource["Properties"], name
        # a change of the function's properties or of the layer publishes a version behind the alias
        assert resource["Properties"]["AutoPublishAliasAllProperties"] is True, name
    assert doc["Resources"]["CommonLayer"]["Properties"]["PublishLambdaVersion"] is True
    authorizer = doc["Resources"]["EchoApi"]["Properties"]["Auth"]["Authorizers"]["EchoAuthorizer"]
    assert authorizer["FunctionArn"] == {"Ref": "AuthorizerFunction.Alias"}


# --- what SAM makes of it at deploy time ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sam() -> None:
    subprocess.run(["make", "-s", ".venv/sam-cli/.installed"], cwd=ROOT, check=True)


def transformed(parameters: dict[str, str], function_code: str = "f1", layer_code: str = "l1") -> dict[str, Any]:
    """The resources CloudFormation gets from SAM's transform with these parameter values and uploads."""
    done = subprocess.run(
        [str(SAM_PYTHON), "tests/sam_transform.py", json.dumps(parameters), function_code, layer_code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    resources: dict[str, Any] = json.loads(done.stdout)["Resources"]
    return resources


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def versions(resources: dict[str, Any]) -> set[str]:
    return set(of_type(resources, "AWS::Lambda::Version"))


@pytest.mark.parametrize("snapstart", ["Enabled", "Disabled"])
def test_every_caller_invokes_the_alias_and_snapstart_follows_the_parameter(sam: None, snapstart: str) -> None:
    resources = transformed({"SnapStart": snapstart})
    lambdas = of_type(resources, "AWS::Lambda::Function")
    aliases = of_type(resources, "AWS::Lambda::Alias")
    assert {a["Properties"]["Name"] for a in aliases.values()} == {"live"}
    assert {a["Properties"]["FunctionName"]["Ref"] for a in aliases.values()} == set(lambdas)
    for name, function in lambdas.items():
        # CloudFormation resolves the condition: SnapStart on exactly when the parameter says Enabled
        assert function["Properties"]["SnapStart"] == {
            "Fn::If": ["SnapStartEnabled", {"ApplyOn": "PublishedVersions"}, {"Ref": "AWS::NoValue"}]
        }, name
    body = json.dumps(resources["EchoApi"]["Properties"]["Body"])
    uris = [
        operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        for path in resources["EchoApi"]["Properties"]["Body"]["paths"].values()
        for operation in path.values()
        if "x-amazon-apigateway-integration" in operation  # not the CORS-free OPTIONS, not path parameters
    ]
    assert uris and all("Aliaslive}" in uri for uri in uris), uris
    assert '"__FunctionArn__": {"Ref": "AuthorizerFunctionAliaslive"}' in body
    targets = resources["RunHousekeepingFunctionSchedule"]["Properties"]["Targets"]
    assert [t["Arn"] for t in targets] == [{"Ref": "RunHousekeepingFunctionAliaslive"}]
    permissions = of_type(resources, "AWS::Lambda::Permission").values()
    assert all("Aliaslive" in json.dumps(p["Properties"]["FunctionName"]) for p in permissions)


def test_new_code_or_a_new_layer_publishes_new_versions_and_the_same_upload_none(sam: None) -> None:
    before = versions(transformed({}))
    assert len(before) == len(of_type(transformed({}), "AWS::Lambda::Function"))
    assert versions(transformed({})) == before  # a deploy of the same build publishes nothing
    assert not versions(transformed({}, function_code="f2")) & before
    assert not versions(transformed({}, layer_code="l2")) & before  # most of the code is the layer's


# --- the connection after a restore -----------------------------------------------------------------------------


def test_a_connection_made_before_a_snapshot_is_not_used_after_the_restore() -> None:
    before = db.connection()
    backend = before.info.backend_pid
    db.forget_connections()  # what Lambda's runtime runs after restoring a snapshot
    assert before.closed
    after = db.connection()
    assert after is not before and after.info.backend_pid != backend
    assert after.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    assert db.connection() is after  # and the new one is kept, as before any snapshot


def test_a_restore_drops_the_connections_of_every_thread() -> None:
    """The local runner (and a function with threads) holds one connection per thread; the hook runs on one."""
    made: dict[str, Any] = {}
    restored = threading.Event()

    def worker() -> None:
        made["before"] = db.connection()
        made["before"].execute("SELECT 1")
        restored.wait(timeout=10)
        made["after"] = db.connection()
        made["after"].execute("SELECT 1")

    thread = threading.Thread(target=worker)
    thread.start()
    while "before" not in made:
        threading.Event().wait(0.01)
    db.forget_connections()
    restored.set()
    thread.join(timeout=10)
    assert made["after"] is not made["before"] and made["before"].closed


def test_without_lambdas_runtime_no_hook_is_registered_and_nothing_fails() -> None:
    with pytest.raises(ImportError):
        import snapshot_restore_py  # noqa: F401 - Lambda's runtime has it, the tests' environment does not
    assert db.connection().execute("SELECT 1 AS one").fetchone() == {"one": 1}
