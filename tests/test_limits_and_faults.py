"""Limits, hostile input and a database outage: always a 4xx/503 JSON error, never a 500, nothing half-written."""

import json
import time
from typing import Any

import psycopg
import pytest
from conftest import ADMIN_EMAIL, Api, KeyHolder, Reply, credit

from echo_control import db

TABLES = (
    "users",
    "echo_apps",
    "api_keys",
    "payments",
    "llm_transactions",
    "balances",
    "ledger_entries",
    "idempotency_keys",
    "usage_daily",
)
GOOD_CALL = {"model": "gpt-4o-mini", "inputTokens": 10, "outputTokens": 5}


def _snapshot() -> dict[str, Any]:
    conn = db.connection()
    counts = {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in TABLES}  # noqa: S608
    counts["money"] = conn.execute("SELECT sum(balance) AS b, sum(total_spent) AS s FROM balances").fetchone()
    counts["apps"] = conn.execute(
        "SELECT md5(string_agg(name || coalesce(description, ''), ',' ORDER BY id)) AS h FROM echo_apps"
    ).fetchone()
    return counts


# (label, method, path, credential, raw body, content type, expected status, expected error code)
JSON = "application/json"
CORPUS: list[tuple[str, str, str, str, bytes, str, int, str]] = [
    ("truncated JSON", "POST", "/api/transactions", "key", b'{"model": "gpt-4o",', JSON, 400, "invalid_json"),
    ("trailing garbage", "POST", "/api/transactions", "key", b'{"model": "gpt-4o"} x', JSON, 400, "invalid_json"),
    ("not JSON at all", "POST", "/api/echo-apps", "user", b"name=app", JSON, 400, "invalid_json"),
    (
        "form content type",
        "POST",
        "/api/echo-apps",
        "user",
        b"name=app",
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
    ),
    (
        "text content type",
        "POST",
        "/api/transactions",
        "key",
        json.dumps(GOOD_CALL).encode(),
        "text/plain",
        415,
        "unsupported_media_type",
    ),
    (
        "xml",
        "POST",
        "/api/echo-apps",
        "user",
        b"<app><name>x</name></app>",
        "application/xml",
        415,
        "unsupported_media_type",
    ),
    ("invalid UTF-8", "POST", "/api/echo-apps", "user", b'{"name": "\xff\xfe"}', JSON, 400, "invalid_json"),
    (
        "body over 64 KB",
        "POST",
        "/api/echo-apps",
        "user",
        json.dumps({"name": "x", "description": "d" * 70_000}).encode(),
        JSON,
        413,
        "payload_too_large",
    ),
    ("empty body", "POST", "/api/transactions", "key", b"", JSON, 422, "validation_error"),
    ("array body", "POST", "/api/transactions", "key", b"[]", JSON, 422, "validation_error"),
    ("string body", "POST", "/api/echo-apps", "user", b'"app"', JSON, 422, "validation_error"),
    ("null body", "POST", "/api/echo-apps", "user", b"null", JSON, 422, "validation_error"),
    (
        "duplicate key",
        "POST",
        "/api/transactions",
        "key",
        b'{"model": "gpt-4o-mini", "inputTokens": 1, "outputTokens": 1, "cost": "0.01", "cost": "9"}',
        JSON,
        400,
        "invalid_json",
    ),
    (
        "duplicate nested key",
        "POST",
        "/api/transactions",
        "key",
        b'{"model": "gpt-4o-mini", "inputTokens": 1, "outputTokens": 1, "metadata": {"a": 1, "a": 2}}',
        JSON,
        400,
        "invalid_json",
    ),
    (
        "NaN",
        "POST",
        "/api/transactions",
        "key",
        b'{"model": "gpt-4o-mini", "inputTokens": NaN, "outputTokens": 1}',
        JSON,
        400,
        "invalid_json",
    ),
    (
        "Infinity",
        "POST",
        "/api/transactions",
        "key",
        b'{"model": "gpt-4o-mini", "inputTokens": 1, "outputTokens": Infinity}',
        JSON,
        400,
        "invalid_json",
    ),
    (
        "-Infinity in metadata",
        "POST",
        "/api/transactions",
        "key",
        b'{"model": "gpt-4o-mini", "inputTokens": 1, "outputTokens": 1, "metadata": {"x": -Infinity}}',
        JSON,
        400,
        "invalid_json",
    ),
    (
        "NaN as a string cost",
        "POST",
        "/api/transactions",
        "key",
        json.dumps({**GOOD_CALL, "cost": "NaN"}).encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "Infinity as a string markup",
        "POST",
        "/api/echo-apps",
        "user",
        json.dumps({"name": "x", "markup": "Infinity"}).encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "1e400 tokens",
        "POST",
        "/api/transactions",
        "key",
        b'{"model": "gpt-4o-mini", "inputTokens": 1e400, "outputTokens": 1}',
        JSON,
        422,
        "validation_error",
    ),
    (
        "10^30 tokens",
        "POST",
        "/api/transactions",
        "key",
        json.dumps({**GOOD_CALL, "inputTokens": 10**30}).encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "5000-digit number",
        "POST",
        "/api/transactions",
        "key",
        b'{"model": "gpt-4o-mini", "inputTokens": ' + b"9" * 5000 + b', "outputTokens": 1}',
        JSON,
        400,
        "invalid_json",
    ),
    (
        "cost beyond NUMERIC(10,6)",
        "POST",
        "/api/transactions",
        "key",
        json.dumps({**GOOD_CALL, "cost": "99999999999999999999"}).encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "cost with 7 decimals",
        "POST",
        "/api/transactions",
        "key",
        json.dumps({**GOOD_CALL, "cost": "0.0000001"}).encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "cost as a JSON number above the ceiling",
        "POST",
        "/api/transactions",
        "key",
        json.dumps({**GOOD_CALL, "cost": 9999.9999996}).encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "cost as a huge JSON number",
        "POST",
        "/api/transactions",
        "key",
        b'{"model": "gpt-4o-mini", "inputTokens": 1, "outputTokens": 1, "cost": 1e400}',
        JSON,
        422,
        "validation_error",
    ),
    (
        "negative cost",
        "POST",
        "/api/transactions",
        "key",
        json.dumps({**GOOD_CALL, "cost": "-1.00"}).encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "negative tokens",
        "POST",
        "/api/transactions",
        "key",
        json.dumps({**GOOD_CALL, "outputTokens": -1}).encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "tokens as a string",
        "POST",
        "/api/transactions",
        "key",
        json.dumps({**GOOD_CALL, "inputTokens": "10"}).encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "tokens as a boolean",
        "POST",
        "/api/transactions",
        "key",
        json.dumps({**GOOD_CALL, "inputTokens": True}).encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "negative payment",
        "POST",
        "/api/stripe/payment-link",
        "user",
        b'{"amount": "-10.00"}',
        JSON,
        422,
        "validation_error",
    ),
    ("zero payment", "POST", "/api/stripe/payment-link", "user", b'{"amount": "0"}', JSON, 422, "validation_error"),
    (
        "payment over the limit",
        "POST",
        "/api/stripe/payment-link",
        "user",
        b'{"amount": "10000.01"}',
        JSON,
        422,
        "validation_error",
    ),
    (
        "lone surrogate",
        "POST",
        "/api/echo-apps",
        "user",
        b'{"name": "bad \\ud800 name"}',
        JSON,
        400,
        "invalid_characters",
    ),
    ("NUL in a name", "POST", "/api/echo-apps", "user", b'{"name": "bad\\u0000name"}', JSON, 400, "invalid_characters"),
    (
        "NUL in a metadata key",
        "POST",
        "/api/transactions",
        "key",
        b'{"model": "gpt-4o-mini", "inputTokens": 1, "outputTokens": 1, "metadata": {"a\\u0000": 1}}',
        JSON,
        400,
        "invalid_characters",
    ),
    (
        "only a byte-order mark",
        "POST",
        "/api/echo-apps",
        "user",
        '{"name": "\ufeff"}'.encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "only ideographic spaces",
        "POST",
        "/api/echo-apps",
        "user",
        '{"name": "\u3000\u3000"}'.encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "a bidi override control",
        "POST",
        "/api/echo-apps",
        "user",
        b'{"name": "ok\\u0007"}',
        JSON,
        422,
        "validation_error",
    ),
    (
        "101 emoji",
        "POST",
        "/api/echo-apps",
        "user",
        json.dumps({"name": "🚀" * 101}).encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "SQL in a model name",
        "POST",
        "/api/transactions",
        "key",
        json.dumps({**GOOD_CALL, "model": "gpt-4o'; DROP TABLE llm_transactions; --"}).encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "SQL in an app id",
        "POST",
        "/api/api-keys",
        "user",
        json.dumps({"echoAppId": "1' OR '1'='1"}).encode(),
        JSON,
        404,
        "not_found",
    ),
    ("SQL in a path", "GET", "/api/echo-apps/1%27%20OR%20%271%27=%271", "user", b"", JSON, 404, "not_found"),
    ("SQL in userId", "GET", "/api/transactions?userId=%27%20OR%201=1--", "user", b"", JSON, 403, "forbidden"),
    ("NUL in a query", "GET", "/api/transactions?model=gpt%00", "user", b"", JSON, 400, "invalid_characters"),
    (
        "a field the client may not set",
        "POST",
        "/api/transactions",
        "key",
        json.dumps({**GOOD_CALL, "userId": "00000000-0000-4000-8000-000000000000"}).encode(),
        JSON,
        422,
        "validation_error",
    ),
    (
        "a balance in an app update",
        "PUT",
        "/api/echo-apps/APP",
        "user",
        b'{"balance": "1000"}',
        JSON,
        422,
        "validation_error",
    ),
    (
        "null for a required-if-present field",
        "PUT",
        "/api/echo-apps/APP",
        "user",
        b'{"name": null}',
        JSON,
        422,
        "validation_error",
    ),
    ("page size over 200", "GET", "/api/transactions?limit=201", "user", b"", JSON, 422, "validation_error"),
    ("page size zero", "GET", "/api/transactions?limit=0", "user", b"", JSON, 422, "validation_error"),
    ("a date that is not one", "GET", "/api/transactions?from=yesterday", "user", b"", JSON, 422, "validation_error"),
    ("a timestamp for a date", "GET", "/api/transactions?from=1700000000", "user", b"", JSON, 422, "validation_error"),
    ("an over-long cursor", "GET", "/api/transactions?cursor=" + "a" * 201, "user", b"", JSON, 422, "validation_error"),
    ("a forged cursor", "GET", "/api/transactions?cursor=eyJ4IjogMX0", "user", b"", JSON, 400, "bad_request"),
    ("a key that is not a key", "GET", "/api/me", "garbage", b"", JSON, 401, "unauthorized"),
]


@pytest.mark.parametrize(
    ("label", "method", "path", "credential", "body", "content_type", "status", "code"),
    CORPUS,
    ids=[case[0] for case in CORPUS],
)
def test_bad_input_is_a_clear_4xx_and_changes_nothing(
    key_holder: KeyHolder,
    label: str,
    method: str,
    path: str,
    credential: str,
    body: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    credit(key_holder.session.user["id"], "5")
    token = {"key": key_holder.key, "user": key_holder.session.token, "garbage": "echo_not-a-key"}[credential]
    path = path.replace("APP", key_holder.app["id"])
    before = _snapshot()
    reply = key_holder.session.api.call(
        method, path, token, data=body or None, headers={"Content-Type": content_type} if body else {}
    )
    assert (reply.status, reply.error_code) == (status, code), reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    assert set(reply.body["error"]) == {"code", "message", "details"} and reply.body["error"]["message"]
    assert _snapshot() == before, f"{label} changed something"


def test_sql_looking_text_is_stored_verbatim(api: Api) -> None:
    user = api.sign_in()
    name = "Robert'); DROP TABLE echo_apps;--"
    created = user.create_app(name, description="1' OR '1'='1 /* */ UNION SELECT * FROM users")
    assert user.call("GET", f"/api/echo-apps/{created['id']}").body["name"] == name
    assert db.connection().execute("SELECT count(*) AS n FROM echo_apps").fetchone()["n"] >= 1


def test_unicode_names_round_trip(api: Api) -> None:
    user = api.sign_in()
    for name in ["Café ☕", "アプリ", "🚀" * 100, "  padded  ", "e\u0301clair", "\u202eevil"]:
        created = user.create_app(name)
        assert created["name"] == name.strip()


# --- rate limiting ---------------------------------------------------------------------------------------


def _away_from_a_minute_boundary() -> None:
    # The window is the calendar minute in PostgreSQL; keep the test inside one.
    second = float(db.connection().execute("SELECT EXTRACT(SECOND FROM now()) AS s").fetchone()["s"])
    if second > 50:
        time.sleep(61 - second)


def test_each_api_key_is_rate_limited_across_instances(key_holder: KeyHolder, monkeypatch: pytest.MonkeyPatch) -> None:
    from local_runner.server import LocalApiGateway

    monkeypatch.setenv("ECHO_RATE_LIMIT_PER_MINUTE", "5")
    other_key = key_holder.session.create_key(key_holder.app["id"])["key"]
    _away_from_a_minute_boundary()
    first_instance = key_holder.session.api
    second_instance = Api(LocalApiGateway())  # other warm containers: the count lives in PostgreSQL
    statuses = [
        api.call("GET", "/api/balance", key_holder.key).status for api in [first_instance] * 3 + [second_instance] * 2
    ]
    assert statuses == [200] * 5
    for api in (first_instance, second_instance):
        limited = api.call("GET", "/api/balance", key_holder.key)
        assert (limited.status, limited.error_code) == (429, "rate_limited"), limited.body
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
    refused_debit = first_instance.call("POST", "/api/transactions", key_holder.key, {**GOOD_CALL, "cost": "0.01"})
    assert refused_debit.status == 429
    assert first_instance.call("GET", "/api/balance", other_key).status == 200  # per key, not per user
    assert first_instance.call("GET", "/api/balance", key_holder.session.token).status == 200  # sessions aren't keys


def test_throttling_is_declared_for_api_gateway() -> None:
    from local_runner.template import TEMPLATE

    text = TEMPLATE.read_text()
    assert "ThrottlingRateLimit" in text and "ThrottlingBurstLimit" in text


# --- the database goes away --------------------------------------------------------------------------


def _set_database_reachable(reachable: bool) -> None:
    """As a restart looks from outside: every connection is cut, and new ones are refused until it is back."""
    from echo_control import config
    from local_runner import database

    name = psycopg.conninfo.conninfo_to_dict(config.database_url())["dbname"]
    admin = database.with_database(config.database_url(), "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                psycopg.sql.Identifier(name), psycopg.sql.SQL("true" if reachable else "false")
            )
        )
        if not reachable:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )


def _assert_unavailable(reply: Reply) -> None:
    assert reply.status == 503, reply.body
    assert reply.error_code == "service_unavailable"
    assert int(reply.headers["Retry-After"]) >= 1


def test_a_database_outage_is_503_with_retry_after_and_service_resumes(key_holder: KeyHolder) -> None:
    api = key_holder.session.api
    credit(key_holder.session.user["id"], "1")
    assert key_holder.call("POST", "/api/transactions", {**GOOD_CALL, "cost": "0.10"}).status == 201
    _set_database_reachable(False)
    try:
        for _ in range(3):
            _assert_unavailable(key_holder.session.call("GET", "/api/echo-apps"))  # through the authorizer
            _assert_unavailable(key_holder.call("POST", "/api/transactions", {**GOOD_CALL, "cost": "0.10"}))
            _assert_unavailable(api.call("POST", "/api/validate-api-key", None, {"apiKey": key_holder.key}))
            _assert_unavailable(api.call("POST", "/api/dev/session", None, {"email": "outage@example.com"}))
    finally:
        _set_database_reachable(True)
    # Same runner, same warm containers: the next requests reconnect by themselves.
    assert key_holder.session.call("GET", "/api/echo-apps").status == 200
    recorded = key_holder.call("POST", "/api/transactions", {**GOOD_CALL, "cost": "0.10"})
    assert recorded.status == 201, recorded.body
    balance = key_holder.call("GET", "/api/balance").body
    assert balance["balance"] == "0.800000" or balance["balance"] == "0.8"  # two debits of 0.10, none lost or doubled
    assert api.call("POST", "/api/dev/session", None, {"email": ADMIN_EMAIL}).status == 200
