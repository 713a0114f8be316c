"""The stacks `make deploy` deploys (deploy/split.py lays template.yaml out as a root stack and nested stacks): every
route still reaches its function; each stack stays under CloudFormation's 500 resources after SAM's transform, for
every combination of the parameters that decide what exists, with room for the next features; cfn-lint and
checkov find nothing that is not skipped with a reason."""

import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from deploy import split

ROOT = Path(__file__).resolve().parent.parent
SAM_VENV = ROOT / ".venv" / "sam-cli" / "bin"
CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"
LIMIT = 500  # resources in one CloudFormation stack
# Room kept for what comes next: 20 more routed functions (function, role, version, alias, log group each), all in
# one nested stack in the worst case, and their permissions (two routes each) in the root.
NEXT_FUNCTIONS = 20
PER_FUNCTION = 5
# Values that the rules require beside a combination (an existing network's subnets, an issuer's client, ...).
REQUIRED = {
    "SubnetIds": ["subnet-1"],
    "SecurityGroupIds": ["sg-1"],
    "DatabaseProxyEndpoint": "echo.proxy-abc.us-east-1.rds.amazonaws.com",
    "DatabaseSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:echo-db",
    "OidcClientId": "client",
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return split.load()


@pytest.fixture(scope="module")
def stacks(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return split.split(doc)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stacks")
    split.write(out)
    return out


def routed(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in doc["Resources"].items() if split.api_events(res)}


# --- the layout ------------------------------------------------------------------------------------------------


def test_every_route_reaches_its_function_in_a_nested_stack(
    doc: dict[str, Any], stacks: dict[str, dict[str, Any]]
) -> None:
    root = stacks["template.yaml"]
    paths = root["Resources"][split.API]["Properties"]["DefinitionBody"]["paths"]
    functions = routed(doc)
    assert len(functions) > 60
    for name, function in functions.items():
        homes = [file for file, stack in stacks.items() if name in stack["Resources"]]
        assert len(homes) == 1 and homes[0] != "template.yaml", (name, homes)
        group = homes[0].removesuffix(".yaml")
        nested = stacks[homes[0]]
        moved = nested["Resources"][name]
        # the function as declared (its code, its rights), without the events the root now routes
        assert Path(split.OUT / moved["Properties"]["CodeUri"]).resolve() == (ROOT / function["Properties"]["CodeUri"])
        declared = function["Properties"]
        added = {"LoggingConfig", "AutoPublishCodeSha256"}
        assert set(moved["Properties"]) == set(declared) - {"Events"} | added
        assert all(moved["Properties"][k] == declared[k] for k in ("Description", "Handler") if k in declared)
        assert len(moved["Properties"].get("Policies", [])) == len(declared.get("Policies", []))
        assert nested["Outputs"][name]["Value"] in (
            {"Ref": f"{name}.Alias"},
            {"Fn::If": [function.get("Condition"), {"Ref": f"{name}.Alias"}, ""]},
        )
        for event_name, event in split.api_events(function).items():
            method, path = event["Properties"]["Method"].lower(), event["Properties"]["Path"]
            key = "x-amazon-apigateway-any-method" if method == "any" else method
            operation = paths[path][key]
            if "Condition" in function:
                assert operation["Fn::If"][0] == function["Condition"]
                operation = operation["Fn::If"][1]
            uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            assert uri.endswith(f"/functions/${{{group}.Outputs.{name}}}/invocations"), uri
            public = (event["Properties"].get("Auth") or {}).get("Authorizer") == "NONE"
            assert operation["security"] == [{"NONE" if public else "EchoAuthorizer": []}]
            permission = root["Resources"][f"{name}{event_name}Permission"]
            assert permission["Properties"]["FunctionName"] == {"Fn::GetAtt": [group, f"Outputs.{name}"]}
            source = permission["Properties"]["SourceArn"]["Fn::Sub"][0]
            assert source.endswith("/" + ("*" if method == "any" else method.upper()) + re.sub(r"\{[^}]+\}", "*", path))
            assert permission.get("Condition") == function.get("Condition")
    # and nothing else is routed
    routes = sum(len(split.api_events(f)) for f in functions.values())
    assert sum(len(ops) for ops in paths.values()) == routes


def test_what_has_no_route_stays_in_the_root_and_each_function_has_a_log_group(
    doc: dict[str, Any], stacks: dict[str, dict[str, Any]]
) -> None:
    root = stacks["template.yaml"]["Resources"]
    kept = {n for n, r in doc["Resources"].items() if r["Type"] == split.FUNCTION and not split.api_events(r)}
    assert kept >= {"AuthorizerFunction", "MigrateFunction", "RunHousekeepingFunction", "ConfigureSignInFunction"}
    assert kept <= set(root)
    for stack in stacks.values():
        resources = stack["Resources"]
        for name, resource in resources.items():
            if resource["Type"] != split.FUNCTION:
                continue
            group = resources[f"{name}LogGroup"]
            assert resource["Properties"]["LoggingConfig"] == {"LogGroup": {"Ref": f"{name}LogGroup"}}
            assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
            assert group.get("Condition") == resource.get("Condition")
    assert doc["Parameters"]["LogRetentionDays"]["Default"] == 30


def test_the_functions_change_only_after_the_migrations_and_those_run_when_they_change(
    stacks: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = stacks["template.yaml"]["Resources"]
    nested = [name for name, r in root.items() if r["Type"] == "AWS::Serverless::Application"]
    assert nested and all(root[name]["DependsOn"] == "Migrations" for name in nested)
    assert "Migrations" in root[split.API]["DependsOn"]
    assert root["AuthorizerFunction"]["DependsOn"] == "Migrations"
    digest = root["Migrations"]["Properties"]["MigrationsDigest"]
    assert digest == split.files_digest(split.MIGRATIONS_DIR)
    # a new migration is a new digest, so CloudFormation invokes the migrate function again; the same files, the same
    copy = tmp_path / "migrations"
    shutil.copytree(split.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert split.files_digest(copy) == digest
    (copy / "9999_next.sql").write_text("SELECT 1;\n")
    monkeypatch.setattr(split, "MIGRATIONS_DIR", copy)
    again = split.split(split.load())["template.yaml"]["Resources"]["Migrations"]["Properties"]["MigrationsDigest"]
    assert again != digest


def test_a_nested_function_is_released_when_its_code_the_layer_or_its_properties_change(
    doc: dict[str, Any], tmp_path: Path
) -> None:
    """Nested stacks get the layer as a parameter, which SAM does not look into: their versions are named after a
    digest of the function's code, the layer's and the function's template properties."""
    code, layer = tmp_path / "code", tmp_path / "layer"
    shutil.copytree(ROOT / "functions" / "get_me", code, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "layers" / "common" / "echo_control" / "models", layer / "models")
    resource = json.loads(json.dumps(doc["Resources"]["GetMeFunction"]))
    resource["Properties"]["CodeUri"] = str(code)
    function_globals = doc["Globals"]["Function"]
    first = split.release_of(resource, function_globals, [layer])
    assert split.release_of(resource, function_globals, [layer]) == first
    (layer / "models" / "new.py").write_text("X = 1\n")
    after_layer = split.release_of(resource, function_globals, [layer])
    (code / "app.py").write_text((code / "app.py").read_text() + "\n# changed\n")
    after_code = split.release_of(resource, function_globals, [layer])
    resource["Properties"]["MemorySize"] = 1024
    after_properties = split.release_of(resource, function_globals, [layer])
    assert len({first, after_layer, after_code, after_properties}) == 4
    nested = next(s for s in split.split(doc).values() if "GetMeFunction" in s["Resources"] and "Outputs" in s)
    sha = nested["Resources"]["GetMeFunction"]["Properties"]["AutoPublishCodeSha256"]
    assert re.fullmatch(r"[0-9a-f]{64}", sha)


# --- after SAM's transform, for every combination ----------------------------------------------------------------


def transform(path: Path, parameters: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [str(SAM_VENV / "python"), "tests/sam_transform.py", json.dumps(parameters), "f1", "l1", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def evaluate(expression: Any, values: dict[str, Any], conditions: dict[str, Any]) -> Any:
    """CloudFormation's condition functions, on parameter values."""
    if not isinstance(expression, dict):
        return expression
    ((function, argument),) = expression.items()
    if function == "Ref":
        return values[argument]
    if function == "Condition":
        return evaluate(conditions[argument], values, conditions)
    arguments = [evaluate(a, values, conditions) for a in argument]
    if function == "Fn::Equals":
        return str(arguments[0]) == str(arguments[1])
    if function == "Fn::Not":
        return not arguments[0]
    if function == "Fn::And":
        return all(arguments)
    if function == "Fn::Or":
        return any(arguments)
    if function == "Fn::Contains":
        return arguments[1] in arguments[0]
    raise ValueError(f"no evaluation for {function}")


def deciding_parameters(doc: dict[str, Any]) -> dict[str, list[Any]]:
    """The parameters the conditions read, each with the values that matter: its allowed ones, or empty and not."""
    used = sorted({name for name, _ in split.names_in(doc["Conditions"])} - {"AWS::NoValue"})
    choices = {}
    for name in used:
        declared = doc["Parameters"][name]
        if "AllowedValues" in declared:
            choices[name] = [str(v) for v in declared["AllowedValues"]]
        elif declared["Type"] == "Number":
            choices[name] = ["0", "5"]
        else:
            choices[name] = ["", "given"]
    return choices


def combinations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the deciding parameters that the template's rules accept."""
    choices = deciding_parameters(doc)
    defaults = {n: p.get("Default", "") for n, p in doc["Parameters"].items()}
    accepted = []
    for values in itertools.product(*choices.values()):
        combination = defaults | REQUIRED | dict(zip(choices, values, strict=True))
        rules_hold = all(
            evaluate(assertion["Assert"], combination, doc["Conditions"])
            for rule in doc["Rules"].values()
            if evaluate(rule.get("RuleCondition", True), combination, doc["Conditions"])
            for assertion in rule["Assertions"]
        )
        if rules_hold:
            accepted.append(combination)
    return accepted


def count(template: dict[str, Any], values: dict[str, Any]) -> int:
    conditions = template.get("Conditions", {})
    return sum(
        1
        for resource in template["Resources"].values()
        if "Condition" not in resource or evaluate(conditions[resource["Condition"]], values, conditions)
    )


def shape(template: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {name: (r["Type"], r.get("Condition")) for name, r in template["Resources"].items()}


@pytest.fixture(scope="module")
def transformed(doc: dict[str, Any], written: Path) -> dict[str, dict[str, Any]]:
    """Each stack after SAM's transform. SAM keeps the conditions for CloudFormation to resolve: its output has the
    same resources whatever the values (checked here for two opposite deployments), and CloudFormation then keeps
    those whose condition holds."""
    subprocess.run(["make", "-s", ".venv/sam-cli/.installed"], cwd=ROOT, check=True)
    opposite = REQUIRED | {
        "DeploymentType": "development",
        "AuthMode": "dev",
        "SnapStart": "Enabled",
        "NetworkMode": "existing",
        "DatabaseMode": "existing",
        "ApiGatewayLogRole": "existing",
        "StripeSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:stripe",
        "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:alarms",
        "FunctionConcurrency": 5,
        "DomainName": "echo.example.com",
    }
    result = {}
    for path in sorted(written.glob("*.yaml")):
        first = transform(path, {})
        assert shape(transform(path, opposite)) == shape(first), path.name
        result[path.name] = first
    return result


def test_every_combination_stays_under_the_limit_with_room_for_the_next_features(
    doc: dict[str, Any], transformed: dict[str, dict[str, Any]], stacks: dict[str, dict[str, Any]]
) -> None:
    accepted = combinations(doc)
    assert len(accepted) > 500, "the deciding parameters should make many combinations"
    # the nested stacks' conditions read the root's parameters, passed on unchanged
    for name, stack in stacks.items():
        if name == "template.yaml":
            continue
        passed = stacks["template.yaml"]["Resources"][name.removesuffix(".yaml")]["Properties"]["Parameters"]
        for parameter in {n for n, _ in split.names_in(stack.get("Conditions", {}))}:
            assert passed[parameter] in ({"Ref": parameter}, {"Fn::Join": [",", {"Ref": parameter}]})
    largest = {name: max(count(template, values) for values in accepted) for name, template in transformed.items()}
    smallest = {name: min(count(template, values) for values in accepted) for name, template in transformed.items()}
    print(f"resources after SAM's transform, most and fewest over {len(accepted)} combinations:", largest, smallest)
    next_routes = 2 * NEXT_FUNCTIONS
    assert largest["template.yaml"] + next_routes <= LIMIT, largest
    for name, most in largest.items():
        if name != "template.yaml":
            assert most + NEXT_FUNCTIONS * PER_FUNCTION <= LIMIT, (name, most)
    # CloudFormation's other limits per template: 200 parameters, 200 outputs (one per nested function)
    for name, stack in stacks.items():
        assert len(stack.get("Parameters", {})) <= 200 and len(stack.get("Outputs", {})) + NEXT_FUNCTIONS <= 200, name
    # the same template as one stack would not fit (why it is split)
    functions = sum(1 for r in doc["Resources"].values() if r["Type"] == split.FUNCTION)
    assert sum(largest.values()) - len(largest) + 1 + NEXT_FUNCTIONS * (PER_FUNCTION + 2) > LIMIT, functions


def test_what_the_conditions_create(doc: dict[str, Any], transformed: dict[str, dict[str, Any]]) -> None:
    """The parameters decide the network, the database, the user pool, the Stripe secret and the alarm topic."""
    root = transformed["template.yaml"]
    base = {n: p.get("Default", "") for n, p in doc["Parameters"].items()} | REQUIRED

    def made(**values: Any) -> set[str]:
        conditions = root["Conditions"]
        chosen = base | values
        return {
            name
            for name, r in root["Resources"].items()
            if "Condition" not in r or evaluate(conditions[r["Condition"]], chosen, conditions)
        }

    fresh = made()  # a fresh account: everything made here
    assert {"Vpc", "NatGateway", "SecretsManagerEndpoint", "DatabaseCluster", "DatabaseProxy"} <= fresh
    assert {"UserPool", "UserPoolClient", "UserPoolDomain", "SignInClientSettings", "StripeSecret"} <= fresh
    assert {"AlarmTopic", "Migrations", "HousekeepingDeadLetterQueue"} <= fresh
    existing = made(NetworkMode="existing", DatabaseMode="existing", OidcIssuer="https://id.example.com")
    assert not {"Vpc", "NatGateway", "DatabaseCluster", "DatabaseProxy", "UserPool", "SignInClientSettings"} & existing
    assert {"Migrations", "ApiServerErrorsAlarm", "ConfigurationErrorAlarm"} <= existing
    clerk = made(AuthMode="clerk")
    assert "UserPool" not in clerk
    given = made(StripeSecretArn="arn:stripe", AlarmTopicArn="arn:alarms")
    assert not {"StripeSecret", "AlarmTopic"} & given
    domain = {"CustomDomain", "CustomDomainMapping", "CustomDomainRecord"}
    assert not domain & fresh
    assert not domain & made(DomainName="echo.example.com")  # only named in the sign-in callbacks
    assert domain - {"CustomDomainRecord"} <= made(DomainName="echo.example.com", CertificateArn="arn:cert")
    assert domain <= made(DomainName="echo.example.com", CertificateArn="arn:cert", HostedZoneId="Z1")
    mapping = root["Resources"]["CustomDomainMapping"]["Properties"]
    assert mapping["RestApiId"] == {"Ref": "EchoApi"} and mapping["DomainName"] == {"Ref": "CustomDomain"}


def test_alarms_notify_the_topic_and_cover_what_the_issue_names(doc: dict[str, Any]) -> None:
    alarms = {n: r["Properties"] for n, r in doc["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    topic = [{"Fn::If": ["CreatesAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}]
    assert all(a["AlarmActions"] == topic == a["OKActions"] for a in alarms.values())
    watched = {(a["Namespace"], a["MetricName"]) for a in alarms.values()}
    assert watched == {
        ("AWS/ApiGateway", "5XXError"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("EchoControl", "ConfigurationError"),
        ("EchoControl", "HousekeepingSweepFailed"),
        ("EchoControl", "AutoTopUpsWaiting"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    }
    # the metrics our code publishes, under the names and dimension Powertools gives them
    source = (ROOT / "layers" / "common" / "echo_control").glob("*.py")
    published = "".join(p.read_text() for p in source)
    for alarm in alarms.values():
        if alarm["Namespace"] == "EchoControl":
            assert f'"{alarm["MetricName"]}"' in published
            assert alarm["Dimensions"] == [{"Name": "service", "Value": "echo-control"}]
    housekeeping = doc["Resources"]["RunHousekeepingFunction"]["Properties"]
    dead_letters = {"Fn::GetAtt": ["HousekeepingDeadLetterQueue", "Arn"]}
    assert housekeeping["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"] == dead_letters
    assert housekeeping["Events"]["Schedule"]["Properties"]["DeadLetterConfig"]["Arn"] == dead_letters


# --- linters -------------------------------------------------------------------------------------------------


def test_cfn_lint_finds_nothing_in_the_stacks(written: Path, transformed: dict[str, dict[str, Any]]) -> None:
    done = subprocess.run(
        [str(SAM_VENV / "cfn-lint"), *sorted(str(p) for p in written.glob("*.yaml"))],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_checkov_finds_nothing_that_is_not_skipped_with_a_reason(doc: dict[str, Any], written: Path) -> None:
    subprocess.run(["make", "-s", ".venv/checkov/.installed"], cwd=ROOT, check=True)
    done = subprocess.run(
        [str(CHECKOV), "--config-file", str(ROOT / ".checkov.yaml"), "-d", str(written), "-o", "json"],
        capture_output=True,
        text=True,
    )
    report = json.loads(done.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert not failed, failed
    assert report["summary"]["passed"] > 100
    # each skip in the template says why, in a line
    for name, resource in doc["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]) and 20 < len(skip["comment"]) <= 120, (name, skip)
    # and each check skipped everywhere is preceded by its reason
    lines = (ROOT / ".checkov.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip().startswith("- CKV"):
            assert lines[number - 1].strip().startswith("#"), line


def test_a_routed_function_that_names_another_routed_function_is_refused(doc: dict[str, Any]) -> None:
    """Two routed functions may land in different nested stacks, where neither can name the other."""
    changed = json.loads(json.dumps(doc))
    variables = changed["Resources"]["GetMeFunction"]["Properties"]["Environment"]["Variables"]
    variables["OTHER"] = {"Fn::GetAtt": ["ShowHomeFunction", "Arn"]}
    with pytest.raises(ValueError, match="ShowHomeFunction, a routed function"):
        split.split(changed)


def test_a_nested_function_reads_what_the_root_made_or_was_given(stacks: dict[str, dict[str, Any]]) -> None:
    """The database host and secret, the subnets: the root passes each as a parameter of its own, never mixed up
    with a root parameter of the same name (DatabaseProxy.Endpoint and the parameter DatabaseProxyEndpoint)."""
    root = stacks["template.yaml"]["Resources"]
    nested = stacks["ApiFunctions.yaml"]
    passed = root["ApiFunctions"]["Properties"]["Parameters"]
    variables = nested["Resources"]["GetMeFunction"]["Properties"]["Environment"]["Variables"]

    def given(expression: dict[str, Any]) -> Any:
        return passed[expression["Ref"]]

    made, existing = variables["DB_HOST"]["Fn::If"][1:]
    assert given(made) == {"Fn::If": ["CreatesDatabase", {"Fn::GetAtt": ["DatabaseProxy", "Endpoint"]}, ""]}
    assert given(existing) == {"Ref": "DatabaseProxyEndpoint"}
    made, existing = variables["DB_SECRET_ARN"]["Fn::If"][1:]
    assert given(made) == {"Fn::If": ["CreatesDatabase", {"Ref": "DatabaseSecret"}, ""]}
    assert given(existing) == {"Ref": "DatabaseSecretArn"}
    subnets = nested["Globals"]["Function"]["VpcConfig"]["Fn::If"][1]["SubnetIds"]["Fn::If"]
    assert [given(s) for s in subnets[1]] == [
        {"Fn::If": ["CreatesNetwork", {"Ref": "PrivateSubnetA"}, ""]},
        {"Fn::If": ["CreatesNetwork", {"Ref": "PrivateSubnetB"}, ""]},
    ]
    assert given(subnets[2]) == {"Fn::Join": [",", {"Ref": "SubnetIds"}]}
    # every parameter a nested stack declares is passed, and nothing else
    for name, stack in stacks.items():
        if name != "template.yaml":
            declared = set(stack["Parameters"])
            assert declared == set(root[name.removesuffix(".yaml")]["Properties"]["Parameters"]), name
