"""Every sample event in events/ goes through its function's handler, as `sam local invoke -e` would send it."""

import json
from pathlib import Path
from uuid import uuid4

import pytest

from local_runner import samples, template
from local_runner.lambdas import LambdaContext, load_handler

ROOT = Path(__file__).resolve().parent.parent
EVENTS = sorted((ROOT / "events").glob("*.json"))
# What each sample should produce (HTTP status, or a check on a non-HTTP result).
EXPECTED_STATUS = {
    "create_dev_session": 200,
    "get_me": 200,
    "list_echo_apps": 200,
    "create_echo_app": 201,
    "get_echo_app": 200,
    "update_echo_app": 200,
    "get_app_prices": 200,
    "put_app_prices": 200,
    "list_api_keys": 200,
    "create_api_key": 201,
    "revoke_api_key": 200,
    "validate_api_key": 200,
    "get_balance": 200,
    "adjust_balance": 200,
    "create_credit_code": 201,
    "list_credit_codes": 200,
    "redeem_credit_code": 404,  # the sample's code does not exist: code_not_found
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
    "complete_sign_in": 404,  # the callback of ECHO_AUTH_MODE=oidc; the samples run in dev mode
    "sign_in": 303,
    "sign_out": 303,
    "show_dashboard": 200,
    "create_app_page": 303,
    "show_app": 200,
    "create_key_page": 303,
    "set_prices_page": 303,
    "show_models": 200,
    "revoke_key_page": 303,
    "show_balance": 200,
    "adjust_balance_page": 303,
    "buy_credits": 303,
    "export_app_transactions": 200,
    "get_openapi_document": 200,
    "list_models": 200,
    "show_api_docs": 200,
    "show_not_found": 404,
    "update_api_key": 200,
    "create_hold": 201,
    "settle_hold": 201,
    "release_hold": 200,
    "get_hold": 200,
    "get_ledger": 200,
    "export_statement": 200,
    "list_app_customers": 200,
    "get_earnings": 200,
    "get_app_earnings": 200,
    "create_payout_account": 200,
    "create_payout": 201,
    "list_payouts": 200,
    "show_mock_onboarding": 200,
    "complete_mock_onboarding": 303,
    "show_earnings": 200,
    "start_onboarding_page": 303,
    "create_payout_page": 303,
    "show_cli_auth": 200,
    "create_cli_key_page": 303,
    "show_join": 200,
    "join_app_page": 303,
    "set_customers_page": 303,
    "set_key_limit_page": 303,
    "create_webhook": 201,
    "list_webhooks": 200,
    "delete_webhook": 200,
    "list_webhook_deliveries": 200,
    "retry_webhook_delivery": 200,
    "put_balance_alerts": 200,
    "show_webhooks": 200,
    "create_webhook_page": 303,
    "show_webhook": 200,
    "delete_webhook_page": 303,
    "resend_delivery_page": 303,
    "set_balance_alert_page": 303,
    "show_consent": 200,
    "decide_consent": 303,
    "issue_oauth_token": 200,
    "revoke_oauth_token": 200,
    "show_connections": 200,
    "disconnect_app_page": 303,
    "set_redirect_uris_page": 303,
    "redeem_credit_code_page": 303,
    "show_credit_codes": 200,
    "create_credit_code_page": 303,
    "create_setup_link": 201,
    "get_auto_top_up": 200,
    "put_auto_top_up": 200,
    "show_mock_setup": 200,
    "complete_mock_setup": 303,
    "start_card_setup_page": 303,
    "set_auto_top_up_page": 303,
}
# What the webhook functions without a route answer to their samples: the relay has no queue outside the cloud (the
# local runner delivers), and the sample message names a delivery that no longer exists (done: nothing to retry).
NON_HTTP_RESULTS = {"relay_webhooks": {"queued": 0}, "deliver_webhooks": {"batchItemFailures": []}}
# What the scheduled housekeeping function answers: a count per sweep (how many it settled), beside batchLimit.
HOUSEKEEPING_COUNTS = {"idempotencyKeysPurged", "paymentsExpired", "pageFlashesPurged", "rateLimitWindowsPurged"}
# What the scheduled auto top-up worker answers: how many charges it sent, failed, left for later, and how many wait.
AUTO_TOP_UP_COUNTS = {"sent", "failed", "later", "waiting"}


@pytest.fixture(scope="module")
def sample_rows() -> None:
    samples.load_sample_rows()


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
    monkeypatch.setenv("ECHO_PUBLIC_URL", live_server)  # where the mock checkout delivers its webhook
    event = samples.ready_event(event_file.stem, event)
    result = handler(event, LambdaContext(event_file.stem))
    name = event_file.stem
    if name == "authorizer":
        assert result["policyDocument"]["Statement"][0]["Effect"] == "Allow"
        assert result["context"]["userId"] == str(samples.SAMPLE_USER) and result["context"]["authType"] == "apiKey"
    elif name == "migrate":
        assert result == {"applied": []}
    elif name == "run_housekeeping":
        assert result.keys() >= HOUSEKEEPING_COUNTS and result["batchLimit"] == 5000, result
    elif name == "charge_auto_top_ups":
        assert result.keys() == AUTO_TOP_UP_COUNTS and all(isinstance(n, int) for n in result.values()), result
    elif name in NON_HTTP_RESULTS:
        assert result == NON_HTTP_RESULTS[name]
    else:
        assert result["statusCode"] == EXPECTED_STATUS[name], result["body"]
        content_type = (result.get("multiValueHeaders") or {}).get("Content-Type", [""])[0]
        if content_type == "application/json":
            json.loads(result["body"])


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("record_transaction", 402, "insufficient_balance"),  # no balance row: nothing to spend
        ("create_echo_app", 404, "not_found"),
        ("create_api_key", 404, "not_found"),
    ],
)
def test_an_event_for_a_user_the_database_lacks_is_refused(name: str, status: int, code: str) -> None:
    """A caller the authorizer let in but the database no longer has (deleted since, or a sample event run on an
    empty database) is refused and nothing is written, never a 500."""
    from echo_control import db

    event = json.loads((ROOT / "events" / f"{name}.json").read_text())
    ghost = str(uuid4())
    event["requestContext"]["authorizer"].update({"userId": ghost, "principalId": ghost})
    if "apiKeyId" in event["requestContext"]["authorizer"]:  # the user's key went with them
        event["requestContext"]["authorizer"]["apiKeyId"] = str(uuid4())
    result = load_handler(_function_dir(ROOT / "events" / f"{name}.json"))(event, LambdaContext(name))
    assert result["statusCode"] == status, result["body"]
    assert json.loads(result["body"])["error"]["code"] == code
    with db.transaction() as conn:
        scopes = [ghost, event["requestContext"]["authorizer"].get("apiKeyId", ghost)]
        claims = conn.execute("SELECT count(*) AS n FROM idempotency_keys WHERE scope_id::text = ANY(%s)", [scopes])
        assert claims.fetchone() == {"n": 0}
