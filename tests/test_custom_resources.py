"""The custom resources CloudFormation invokes on deploy: the migrations (functions/migrate) and the Cognito client's
settings (functions/configure_sign_in). Each answers at the request's ResponseURL, here a server on loopback, as it
answers CloudFormation's presigned S3 URL: SUCCESS, or FAILED with the reason, which fails the deploy."""

import http.server
import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from local_runner import database
from local_runner.lambdas import LambdaContext, load_handler

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "layers" / "common" / "echo_control" / "migrations"


class CloudFormation:
    """Receives the answers, as S3 does for CloudFormation: one PUT per request, JSON without a content type."""

    def __init__(self) -> None:
        self.answers: list[dict[str, Any]] = []
        self.content_types: list[str | None] = []
        answers, content_types = self.answers, self.content_types

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                answers.append(json.loads(body))
                content_types.append(self.headers.get("Content-Type"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/response?X-Amz-Signature=abc"

    def request(self, kind: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "RequestType": kind,
            "ResponseURL": self.url,
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/echo-control/1",
            "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": "Resource",
            "ResourceType": "AWS::CloudFormation::CustomResource",
            "ResourceProperties": {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f", **properties},
            **extra,
        }


@pytest.fixture
def cloudformation() -> Iterator[CloudFormation]:
    received = CloudFormation()
    yield received
    received.server.shutdown()


@pytest.fixture
def empty_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database of its own with no schema yet, as on a stack's first deploy."""
    from echo_control import db

    name = f"echo_migrate_{uuid.uuid4().hex[:10]}"
    admin = database.with_database(database_url, "postgres")
    database.create_database(admin, name)
    url = database.with_database(admin, name)
    db.discard_connection()
    monkeypatch.setenv("DATABASE_URL", url)
    yield url
    db.discard_connection()
    monkeypatch.undo()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


# --- migrations on deploy ----------------------------------------------------------------------------------------


def test_create_applies_the_migrations_and_an_update_applies_none(
    cloudformation: CloudFormation, empty_database: str
) -> None:
    migrate = load_handler(ROOT / "functions" / "migrate")
    properties = {"MigrationsDigest": "first"}
    sent = migrate(cloudformation.request("Create", properties), LambdaContext("migrate"))
    applied = len(list(MIGRATIONS.glob("*.sql")))
    assert cloudformation.answers == [sent]
    assert sent["Status"] == "SUCCESS" and sent["Data"] == {"Applied": applied}, sent
    assert sent["PhysicalResourceId"] == "migrations"
    assert cloudformation.content_types == [""], "S3's presigned PUT is signed without a content type"
    assert {"users", "api_keys", "llm_transactions"} <= tables(empty_database)
    # an update (the migrations changed, or a rollback) applies what is pending: here nothing
    update = cloudformation.request("Update", {"MigrationsDigest": "second"}, PhysicalResourceId="migrations")
    again = migrate(update, LambdaContext("migrate"))
    assert again["Status"] == "SUCCESS" and again["Data"] == {"Applied": 0}
    assert again["PhysicalResourceId"] == "migrations", "the same resource: CloudFormation replaces nothing"


def test_a_failing_migration_answers_failed_with_its_reason_and_applies_nothing_of_it(
    cloudformation: CloudFormation, empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from echo_control.db import migrations

    broken = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, broken, ignore=shutil.ignore_patterns("__pycache__"))
    (broken / "9999_broken.sql").write_text("CREATE TABLE half_done (id int);\nSELECT no_such_column FROM users;\n")
    monkeypatch.setattr(migrations, "MIGRATIONS_DIR", broken)
    migrate = load_handler(ROOT / "functions" / "migrate")
    sent = migrate(cloudformation.request("Create", {}), LambdaContext("migrate"))
    assert cloudformation.answers == [sent]
    assert sent["Status"] == "FAILED" and "no_such_column" in sent["Reason"], sent
    assert "half_done" not in tables(empty_database), "the failed migration is rolled back"


def test_an_unreachable_database_fails_the_deploy_once_the_time_to_retry_is_spent(
    cloudformation: CloudFormation, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    from echo_control import db

    monkeypatch.setenv("DATABASE_URL", database.with_database(database_url, "no_such_database"))
    db.discard_connection()
    migrate = load_handler(ROOT / "functions" / "migrate")
    sent = migrate(cloudformation.request("Create", {}), LambdaContext("migrate", timeout_seconds=5))
    assert sent["Status"] == "FAILED" and sent["Reason"].startswith("OperationalError"), sent
    db.discard_connection()


def test_delete_changes_nothing_and_a_direct_invocation_still_answers_its_caller(
    cloudformation: CloudFormation, database_url: str
) -> None:
    migrate = load_handler(ROOT / "functions" / "migrate")
    before = tables(database_url)
    sent = migrate(cloudformation.request("Delete", {}, PhysicalResourceId="migrations"), LambdaContext("migrate"))
    assert sent["Status"] == "SUCCESS" and tables(database_url) == before
    assert migrate({}, LambdaContext("migrate")) == {"applied": []}
    assert len(cloudformation.answers) == 1, "a direct invocation answers its caller, not CloudFormation"


# --- the Cognito client's settings -------------------------------------------------------------------------------


@pytest.fixture
def cognito(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield boto3.client("cognito-idp")


def test_the_client_gets_its_oauth_settings_and_urls_and_keeps_the_rest(
    cloudformation: CloudFormation, cognito: Any
) -> None:
    pool = cognito.create_user_pool(PoolName="echo")["UserPool"]["Id"]
    client = cognito.create_user_pool_client(UserPoolId=pool, ClientName="echo-control-dashboard")["UserPoolClient"]
    api = "https://abc123.execute-api.us-east-1.amazonaws.com/prod"
    settings = {
        "UserPoolId": pool,
        "ClientId": client["ClientId"],
        "AllowedOAuthFlows": ["code"],
        "AllowedOAuthScopes": ["openid", "email", "profile"],
        "SupportedIdentityProviders": ["COGNITO"],
        "CallbackURLs": [f"{api}/auth/callback", "https://echo.example.com/auth/callback"],
        "LogoutURLs": [f"{api}/", "https://echo.example.com/"],
    }
    configure = load_handler(ROOT / "functions" / "configure_sign_in")
    sent = configure(cloudformation.request("Create", settings), LambdaContext("configure_sign_in"))
    assert sent["Status"] == "SUCCESS", sent
    now = cognito.describe_user_pool_client(UserPoolId=pool, ClientId=client["ClientId"])["UserPoolClient"]
    assert now["CallbackURLs"] == settings["CallbackURLs"] and now["LogoutURLs"] == settings["LogoutURLs"]
    assert now["AllowedOAuthFlows"] == ["code"] and now["AllowedOAuthFlowsUserPoolClient"] is True
    assert set(now["AllowedOAuthScopes"]) == {"openid", "email", "profile"}
    assert now["ClientName"] == "echo-control-dashboard" and "ClientSecret" not in now
    # a Delete leaves the client alone (CloudFormation deletes it with the stack)
    delete = cloudformation.request("Delete", settings, PhysicalResourceId=sent["PhysicalResourceId"])
    assert configure(delete, LambdaContext("configure_sign_in"))["Status"] == "SUCCESS"
    after = cognito.describe_user_pool_client(UserPoolId=pool, ClientId=client["ClientId"])["UserPoolClient"]
    assert after["CallbackURLs"] == settings["CallbackURLs"]


def test_an_unknown_client_fails_the_deploy(cloudformation: CloudFormation, cognito: Any) -> None:
    pool = cognito.create_user_pool(PoolName="echo")["UserPool"]["Id"]
    configure = load_handler(ROOT / "functions" / "configure_sign_in")
    settings = {"UserPoolId": pool, "ClientId": "nope", "AllowedOAuthFlows": ["code"], "AllowedOAuthScopes": ["openid"]}
    settings |= {
        "SupportedIdentityProviders": ["COGNITO"],
        "CallbackURLs": ["https://x/cb"],
        "LogoutURLs": ["https://x/"],
    }
    sent = configure(cloudformation.request("Create", settings), LambdaContext("configure_sign_in"))
    assert sent["Status"] == "FAILED" and "ResourceNotFound" in sent["Reason"], sent
    assert cloudformation.answers == [sent]
