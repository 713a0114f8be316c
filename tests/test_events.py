"""Every sample event in events/ goes through its function's handler, as `sam local invoke -e` would send it."""

import json
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from local_runner import template
from local_runner.lambdas import LambdaContext, load_handler

ROOT = Path(__file__).resolve().parent.parent
EVENTS = sorted((ROOT / "events").glob("*.json"))
SAMPLE_KEY = "echo_SampleKeyForEventsOnly000000000000000000000056Lus"
USER = UUID("11111111-1111-4111-8111-111111111111")
ADMIN = UUID("11111111-1111-4111-8111-000000000000")
APP = UUID("22222222-2222-4222-8222-222222222222")
KEY_ID = UUID("33333333-3333-4333-8333-333333333333")
SPARE_KEY_ID = UUID("33333333-3333-4333-8333-444444444444")

# What each sample should produce (HTTP status, or a check on a non-HTTP result).
EXPECTED_STATUS = {
    "create_dev_session": 200,
    "get_me": 200,
    "list_echo_apps": 200,
    "create_echo_app": 201,
    "get_echo_app": 200,
    "update_echo_app": 200,
    "list_api_keys": 200,
    "create_api_key": 201,
    "revoke_api_key": 200,
    "validate_api_key": 200,
    "get_balance": 200,
    "adjust_balance": 200,
    "record_transaction": 201,
    "list_transactions": 200,
    "list_payments": 200,
    "create_payment_link": 201,
    "stripe_webhook": 200,
    "show_mock_checkout": 200,
    "pay_mock_checkout": 303,
    "get_app_usage": 200,
    "export_transactions": 200,
    "show_home": 303,
    "show_sign_in": 200,
    "sign_in": 303,
    "sign_out": 303,
    "show_dashboard": 200,
    "create_app_page": 303,
    "show_app": 200,
    "create_key_page": 303,
    "revoke_key_page": 303,
    "show_balance": 200,
    "adjust_balance_page": 303,
    "buy_credits": 303,
    "export_app_transactions": 200,
    "get_openapi_document": 200,
    "list_models": 200,
    "show_api_docs": 200,
    "show_not_found": 404,
}
SAMPLE_SESSION = "cs_mock_SampleSessionForTheEventsOnly"


@pytest.fixture(scope="module")
def sample_rows() -> None:
    """The user, admin, app and keys the sample events name, with some credit."""
    from echo_control import db, keys, ledger

    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO users (id, email, clerk_id, role) VALUES "
            "(%s, 'sample@example.com', 'dev_sample@example.com', 'user'), "
            "(%s, 'events-admin@example.com', 'dev_events-admin@example.com', 'admin') ON CONFLICT DO NOTHING",
            [USER, ADMIN],
        )
        conn.execute("INSERT INTO balances (user_id) VALUES (%s), (%s) ON CONFLICT DO NOTHING", [USER, ADMIN])
        conn.execute(
            "INSERT INTO echo_apps (id, name, user_id) VALUES (%s, 'Sample app', %s) ON CONFLICT DO NOTHING",
            [APP, USER],
        )
        for key_id, key in ((KEY_ID, SAMPLE_KEY), (SPARE_KEY_ID, keys.generate_key())):
            conn.execute(
                "INSERT INTO api_keys (id, key_hash, key_prefix, key_last4, user_id, echo_app_id) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [key_id, keys.key_hash(key), key[:12], key[-4:], USER, APP],
            )
        ledger.credit(
            conn, USER, Decimal("10"), kind="admin_adjustment", key="events:credit", reference_id=None, paid=Decimal(0)
        )
        conn.execute(
            "INSERT INTO payments (user_id, amount, status, stripe_session_id) VALUES (%s, 2000, 'pending', %s) "
            "ON CONFLICT DO NOTHING",
            [USER, SAMPLE_SESSION],
        )


def _function_dir(event_file: Path) -> Path:
    functions = {p.name: p for p in template.load().functions.values()}
    name = event_file.stem
    assert name in functions, f"{event_file.name} names no function in template.yaml"
    return functions[name]


def test_every_function_has_a_sample_event() -> None:
    functions = {p.name for p in template.load().functions.values()}
    assert functions <= {e.stem for e in EVENTS}


@pytest.mark.parametrize("event_file", EVENTS, ids=[e.stem for e in EVENTS])
def test_sample_event_through_its_handler(
    event_file: Path, sample_rows: None, live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = load_handler(_function_dir(event_file))
    event = json.loads(event_file.read_text())
    if event_file.stem == "stripe_webhook":  # Stripe signatures expire after 5 minutes: sign it now
        from echo_control import config, payments

        event["headers"]["Stripe-Signature"] = payments.sign_payload(event["body"], config.DEV_WEBHOOK_SECRET)
    monkeypatch.setenv("ECHO_PUBLIC_URL", live_server)  # where the mock checkout delivers its webhook
    cookie = (event.get("headers") or {}).get("Cookie", "")
    if "SIGNED-BY-THE-TESTS" in cookie:  # a session cookie must be signed with this run's key
        from echo_control import auth

        token, _ = auth.issue_dev_session(
            "events-admin@example.com" if "adjust" in event_file.stem else "sample@example.com"
        )
        event["headers"]["Cookie"] = cookie.replace("SIGNED-BY-THE-TESTS", token)
    result = handler(event, LambdaContext(event_file.stem))
    name = event_file.stem
    if name == "authorizer":
        assert result["policyDocument"]["Statement"][0]["Effect"] == "Allow"
        assert result["context"]["userId"] == str(USER) and result["context"]["authType"] == "apiKey"
    elif name == "migrate":
        assert result == {"applied": []}
    else:
        assert result["statusCode"] == EXPECTED_STATUS[name], result["body"]
        content_type = (result.get("multiValueHeaders") or {}).get("Content-Type", [""])[0]
        if content_type == "application/json":
            json.loads(result["body"])
