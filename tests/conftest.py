"""Shared fixtures: a real PostgreSQL per test session, the local API gateway, signed-in users."""

import contextlib
import json
import logging
import os
import secrets
import signal
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import make_server
from werkzeug.test import Client

ADMIN_EMAIL = "admin@example.com"


def _test_signing_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


RUNNER_DATA_PREFIX = "echo-test-runner-"
RUNNER_DATA_DIRS: list[Path] = []  # data directories of this session's runners outside pytest's (test_local_runner)


@pytest.fixture(scope="session", autouse=True)
def no_server_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the run, no PostgreSQL started on a test's data directory may still be running (each is stopped,
    so the next run does not find one, and the failing test is named by its directory)."""
    yield
    bases = (str(tmp_path_factory.getbasetemp()), *map(str, RUNNER_DATA_DIRS))
    left = [
        process
        for process in psutil.process_iter(["name", "cmdline", "ppid"])
        if process.info["name"] == "postgres" and any(arg.startswith(bases) for arg in process.info["cmdline"] or [])
    ]
    postmasters = [process for process in left if process.info["ppid"] not in {p.pid for p in left}]
    for postmaster in postmasters:
        with contextlib.suppress(psutil.NoSuchProcess):
            postmaster.send_signal(signal.SIGQUIT)  # PostgreSQL's immediate shutdown
    assert postmasters == [], f"tests left PostgreSQL running: {[p.info['cmdline'] for p in postmasters]}"


@pytest.fixture(scope="session", autouse=True)
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Local-mode settings, set before any handler is imported."""
    os.environ.update(
        {
            "POWERTOOLS_SERVICE_NAME": "echo-control",
            "POWERTOOLS_METRICS_NAMESPACE": "EchoControl",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "ECHO_AUTH_MODE": "dev",
            "ECHO_ADMIN_EMAILS": ADMIN_EMAIL,
            "ECHO_DEV_SIGN_IN_GRANTS_ADMIN": "true",  # as the local runner, which these tests drive
            "ECHO_DEV_SIGNING_KEY": _test_signing_key(),
            "ECHO_DATA_DIR": str(tmp_path_factory.mktemp("data")),
            # earnings clear at once unless a test says otherwise (clearing has its own tests)
            "ECHO_EARNINGS_CLEARING_DAYS": "0",
        }
    )
    for key in ("STRIPE_SECRET_KEY", "STRIPE_SECRET_ARN", "DB_SECRET_ARN", "STRIPE_API_BASE", "ECHO_PUBLIC_URL"):
        os.environ.pop(key, None)
    from echo_control import config

    config.reload_settings()
    yield


class SettingsMonkeyPatch(pytest.MonkeyPatch):
    """pytest's monkeypatch, and the settings follow: Echo Control parses its environment once per cold start
    (config.settings()), so changing a variable makes the next settings() read the environment again."""

    def setenv(self, name: str, value: str, prepend: str | None = None) -> None:
        super().setenv(name, value, prepend)
        _reload_settings()

    def delenv(self, name: str, raising: bool = True) -> None:
        super().delenv(name, raising)
        _reload_settings()

    def undo(self) -> None:
        super().undo()
        _reload_settings()


def _reload_settings() -> None:
    from echo_control import config

    config.reload_settings()


@pytest.fixture
def monkeypatch() -> Iterator[pytest.MonkeyPatch]:
    """Overrides pytest's fixture: `monkeypatch.setenv("ECHO_…", …)` changes the settings for this test only."""
    patch = SettingsMonkeyPatch()
    yield patch
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def database_url(environment: None) -> Iterator[str]:
    """A fresh database for this session on DATABASE_URL's server, or on an embedded PostgreSQL."""
    from local_runner import database

    name = f"echo_test_{uuid.uuid4().hex[:10]}"
    server_url = os.environ.get("DATABASE_URL")
    if server_url:
        admin = database.with_database(server_url, "postgres")
    else:
        admin = database.embedded_server_url("postgres")
    database.create_database(admin, name)
    url = database.with_database(admin, name)
    os.environ["DATABASE_URL"] = url
    from echo_control import db

    db.apply_migrations(url)
    yield url
    db.discard_connection()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))
    if server_url:
        os.environ["DATABASE_URL"] = server_url


@pytest.fixture(scope="session")
def gateway() -> Any:
    from local_runner.server import LocalApiGateway

    return LocalApiGateway.shared()


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any

    @property
    def error_code(self) -> str | None:
        return (self.body or {}).get("error", {}).get("code") if isinstance(self.body, dict) else None


class Api:
    """Calls the local API gateway in-process, exactly as HTTP requests would arrive."""

    def __init__(self, gateway: Any) -> None:
        self.client = Client(gateway, use_cookies=False)  # Cookie headers pass as sent, like any header

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json_body: Any = None,
        *,
        data: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
    ) -> Reply:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data = json.dumps(json_body)
            all_headers.setdefault("Content-Type", "application/json")
        response = self.client.open(path, method=method, data=data, headers=all_headers, query_string=query)
        text = response.get_data(as_text=True)
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text
        return Reply(response.status_code, body, response.headers)

    def sign_in(self, email: str | None = None) -> "Session":
        email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
        reply = self.call("POST", "/api/dev/session", json_body={"email": email})
        assert reply.status == 200, reply.body
        return Session(self, reply.body["token"], reply.body["user"])


@dataclass
class Session:
    api: Api
    token: str
    user: dict[str, Any]

    def call(self, method: str, path: str, json_body: Any = None, **kwargs: Any) -> Reply:
        return self.api.call(method, path, self.token, json_body, **kwargs)

    def create_app(self, name: str = "My app", **fields: Any) -> dict[str, Any]:
        reply = self.call("POST", "/api/echo-apps", {"name": name, **fields})
        assert reply.status == 201, reply.body
        return reply.body

    def create_key(self, app_id: str, **fields: Any) -> dict[str, Any]:
        reply = self.call("POST", "/api/api-keys", {"echoAppId": app_id, **fields})
        assert reply.status == 201, reply.body
        return reply.body

    def customer_of(self, app: dict[str, Any], amount: str = "10") -> tuple["Session", str]:
        """A new user with a key for this user's app (which must accept customers) and `amount` of cash credit:
        an owner's own calls carry no markup, a customer's do."""
        customer = self.api.sign_in()
        key = customer.create_key(app["id"])["key"]
        credit(customer.user["id"], amount)
        return customer, key


@pytest.fixture(scope="session")
def api(gateway: Any) -> Api:
    return Api(gateway)


@pytest.fixture
def user(api: Api) -> Session:
    return api.sign_in()


@pytest.fixture
def other_user(api: Api) -> Session:
    return api.sign_in()


@pytest.fixture
def admin(api: Api) -> Session:
    return api.sign_in(ADMIN_EMAIL)


@dataclass
class KeyHolder:
    """An end user's API key for an app of theirs, with credit on the balance."""

    session: Session
    app: dict[str, Any]
    key: str

    def call(self, method: str, path: str, json_body: Any = None, **kwargs: Any) -> Reply:
        return self.session.api.call(method, path, self.key, json_body, **kwargs)


def credit(user_id: str, amount: str) -> None:
    """Credits a user through the ledger (as an admin's cash adjustment would: money received, which earns app
    owners their markup when spent)."""
    from decimal import Decimal

    from echo_control import db, ledger

    with db.transaction() as conn:
        ledger.credit(
            conn,
            uuid.UUID(user_id),
            Decimal(amount),
            kind="admin_adjustment",
            key=f"test:{secrets.token_hex(8)}",
            reference_id=None,
            paid=Decimal(0),
            cash=True,
        )


@pytest.fixture
def key_holder(user: Session) -> KeyHolder:
    app = user.create_app("Metered app")
    key = user.create_key(app["id"])["key"]
    return KeyHolder(user, app, key)


@pytest.fixture(scope="session")
def live_server(gateway: Any) -> Iterator[str]:
    """The same gateway over real HTTP on a loopback port, as `make dev` serves it."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns a failure's report
    server = make_server("127.0.0.1", 0, gateway, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by scripts/ensure-chromium; Playwright never downloads one
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
