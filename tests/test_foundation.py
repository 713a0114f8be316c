"""The skeleton: layer imports as Lambda's, template ↔ code, the runner's routing, migrations, connections."""

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

import echo_control
from local_runner import template

ROOT = Path(__file__).resolve().parent.parent


def test_the_layer_package_resolves_from_layers_common() -> None:
    # Given pytest's pythonpath, When echo_control is imported, Then it is the layer's copy (as /opt/python).
    assert Path(echo_control.__file__).resolve().parent == ROOT / "layers" / "common" / "echo_control"
    assert not (ROOT / "layers" / "common" / "python").exists()


def test_every_model_name_is_found_in_the_module_that_defines_it() -> None:
    """echo_control.models imports a name's module when the name is first taken: its table of modules holds exactly
    the names its imports for type checkers list, and each resolves to that module's object."""
    import ast
    import importlib

    from echo_control import models

    source = Path(models.__file__).read_text()
    checked = next(node for node in ast.parse(source).body if isinstance(node, ast.If))  # if TYPE_CHECKING:
    declared = {
        alias.name: node.module.rsplit(".", 1)[1]
        for node in checked.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    assert declared == models._MODULE_OF and sorted(models.__all__) == sorted(declared)
    for name, module in declared.items():
        assert getattr(models, name) is getattr(importlib.import_module(f"echo_control.models.{module}"), name)
    with pytest.raises(AttributeError):
        _ = models.NoSuchModel


def test_every_function_has_an_app_with_a_lambda_handler_and_the_common_layer() -> None:
    api = template.load()
    doc = (ROOT / "template.yaml").read_text()
    assert "ContentUri: layers/common/" in doc and "BuildMethod: python3.12" in doc
    assert api.functions, "no functions declared"
    for name, code_dir in api.functions.items():
        source = (code_dir / "app.py").read_text()
        assert "lambda_handler" in source, name
    on_disk = {p.parent.name for p in (ROOT / "functions").glob("*/app.py")}
    # the local functions, and those the cloud has only (the Cognito client's custom resource)
    declared = re.findall(r"^      CodeUri: functions/(\w+)/$", doc, flags=re.MULTILINE)
    assert {p.name for p in api.functions.values()} <= set(declared)
    assert on_disk == set(declared), "functions/ and template.yaml disagree"
    # Functions may not carry sibling modules: they would import differently in tests and in Lambda.
    for folder in (ROOT / "functions").iterdir():
        if folder.is_dir():
            assert {p.name for p in folder.glob("*.py")} == {"app.py"}, folder


def test_every_route_is_unique_and_public_routes_are_the_intended_ones() -> None:
    api = template.load()
    keys = [(r.method, r.path) for r in api.routes]
    assert len(keys) == len(set(keys))
    public = {(r.method, r.path) for r in api.routes if not r.authorized}
    assert ("POST", "/api/validate-api-key") in public
    assert ("POST", "/api/dev/session") in public
    assert ("GET", "/api/echo-apps") not in public


def test_runner_serves_a_declared_route_over_http_and_404s_an_undeclared_one(live_server: str) -> None:
    request = urllib.request.Request(
        f"{live_server}/api/dev/session",
        data=json.dumps({"email": "runner@example.com"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
        assert json.load(response)["token"].count(".") == 2
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{live_server}/api/not-a-route")
    assert missing.value.code == 404
    assert missing.value.headers["Content-Type"] == "application/json"
    assert json.load(missing.value)["error"]["code"] == "not_found"


def test_wrong_method_on_a_declared_path_is_405_with_allow(api) -> None:
    reply = api.call("PATCH", "/api/echo-apps")
    assert reply.status == 405
    assert set(reply.headers["Allow"].split(", ")) == {"GET", "POST"}


def test_migrations_are_applied_and_idempotent(database_url: str) -> None:
    from echo_control import db

    assert db.apply_migrations(database_url) == []  # already applied by the session fixture
    with psycopg.connect(database_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"users", "echo_apps", "api_keys", "payments", "llm_transactions", "ledger_entries"} <= tables


def test_migrate_function_applies_migrations_through_its_handler() -> None:
    from local_runner.lambdas import LambdaContext, load_handler

    handler = load_handler(ROOT / "functions" / "migrate")
    assert handler({}, LambdaContext("MigrateFunction")) == {"applied": []}


def test_a_dropped_connection_is_replaced_on_the_next_use(database_url: str) -> None:
    import importlib

    from echo_control import db

    connection_module = importlib.import_module("echo_control.db.connection")
    conn = db.connection()
    pid = conn.info.backend_pid
    with psycopg.connect(database_url, autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])
    connection_module._state.last_used = 0  # as if the container had been idle past the ping threshold
    fresh = db.connection()
    assert fresh.info.backend_pid != pid
    assert fresh.execute("SELECT 1 AS one").fetchone() == {"one": 1}


def test_connections_are_autocommit_without_server_prepared_statements() -> None:
    from echo_control import db

    conn = db.connection()
    assert conn.autocommit is True
    assert conn.prepare_threshold is None
    with db.transaction() as tx:
        assert tx.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_database_url_comes_from_secrets_manager_in_the_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    from echo_control import config

    with mock_aws():
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        secret = boto3.client("secretsmanager").create_secret(
            Name="echo/db", SecretString=json.dumps({"username": "echo", "password": "p@ss word", "port": 5432})
        )
        monkeypatch.delenv("DATABASE_URL")
        monkeypatch.setenv("DB_SECRET_ARN", secret["ARN"])
        monkeypatch.setenv("DB_HOST", "proxy.example.internal")
        url = config.database_url()
    conninfo = psycopg.conninfo.conninfo_to_dict(url)
    assert conninfo["host"] == "proxy.example.internal"
    assert conninfo["user"] == "echo" and conninfo["password"] == "p@ss word"
    assert conninfo["sslmode"] == "require"


def test_yoyo_url_accepts_libpq_key_value_strings() -> None:
    from echo_control.db.migrations import _yoyo_url

    url = _yoyo_url("host=/tmp/sock dbname=echo user=postgres")
    assert url == "postgresql+psycopg://postgres@/echo?host=%2Ftmp%2Fsock"
