"""Configuration: parsed once per cold start, every wrong value stops the start; in the cloud the secrets fail
closed (503 configuration_error, never the mock checkout or the development webhook secret); origins."""

import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from conftest import ADMIN_EMAIL, Api

from echo_control import config, origins, payments
from local_runner import lambdas
from local_runner.template import ROOT

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# --- every wrong value stops the start ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ECHO_RATE_LIMIT_PER_MINUTE", "abc"),
        ("ECHO_RATE_LIMIT_PER_MINUTE", "0"),
        ("ECHO_AUTH_MODE", "root"),
        ("ECHO_MAX_PAYMENT_USD", "abc"),
        ("ECHO_MAX_PAYMENT_USD", "0"),
        ("ECHO_MAX_PAYMENT_USD", "50000"),  # above the API's ceiling of 10,000
        ("ECHO_MAX_PAYMENT_USD", "10.001"),
        ("ECHO_MIN_PAYOUT_USD", "abc"),
        ("ECHO_EARNINGS_CLEARING_DAYS", "-1"),
        ("ECHO_EARNINGS_CLEARING_DAYS", "7.5"),
        ("ECHO_MIN_PAYOUT_USD", "0.5"),
        ("ECHO_MIN_PAYOUT_USD", "10.001"),
        ("ECHO_PUBLIC_URL", "localhost:3000"),
        ("ECHO_PUBLIC_URL", "ftp://example.com"),
        ("ECHO_PUBLIC_URL", "https://example.com/?next=x"),
        ("ECHO_DEV_SIGN_IN_GRANTS_ADMIN", "maybe"),
        ("STRIPE_API_BASE", "not a url"),
        ("DB_SSLMODE", "sometimes"),
        ("ECHO_JWKS_URL", "jwks.json"),
    ],
)
def test_a_wrong_value_stops_the_start_with_a_message_naming_it(monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(
        config.InvalidConfiguration, match=f"^Invalid configuration: {name}: .*got {re.escape(repr(value))}"
    ):
        config.settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STRIPE_SECRET_KEY", "pk_test_publishable"),
        ("STRIPE_WEBHOOK_SECRET", "my-webhook-secret"),
        ("STRIPE_CONNECT_WEBHOOK_SECRET", "my-connect-secret"),
    ],
)
def test_a_wrong_secret_stops_the_start_without_being_printed(monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(config.InvalidConfiguration, match=f"^Invalid configuration: {name}: ") as refused:
        config.settings()
    assert value not in str(refused.value)


def test_a_function_with_a_wrong_value_fails_its_cold_start_not_its_requests(monkeypatch) -> None:
    monkeypatch.setenv("ECHO_RATE_LIMIT_PER_MINUTE", "abc")
    for function in ("get_balance", "authorizer", "migrate", "show_dashboard"):
        with pytest.raises(config.InvalidConfiguration, match="ECHO_RATE_LIMIT_PER_MINUTE"):
            lambdas.load_handler(ROOT / "functions" / function)
    assert lambdas.configuration_problem() is not None  # and the local runner refuses to start


def test_the_payment_ceiling_is_the_apis() -> None:
    from echo_control.models import MAX_PAYMENT

    assert config.MAX_PAYMENT == MAX_PAYMENT
    assert config.Settings.model_validate({}).max_payment_usd == MAX_PAYMENT


def test_settings_are_parsed_once_and_read_again_only_when_reloaded(monkeypatch) -> None:
    first = config.settings()
    assert config.settings() is first
    monkeypatch.setenv("ECHO_RATE_LIMIT_PER_MINUTE", "7")  # conftest's monkeypatch reloads, as a new container
    assert config.settings() is not first and config.settings().rate_limit_per_minute == 7


def test_empty_variables_mean_unset_and_values_are_typed(monkeypatch) -> None:
    monkeypatch.setenv("ECHO_PUBLIC_URL", "")  # a template parameter left blank
    monkeypatch.setenv("ECHO_ADMIN_EMAILS", " A@Example.com, ,b@example.com")
    monkeypatch.setenv("ECHO_MAX_PAYMENT_USD", "250.50")
    settings = config.settings()
    assert settings.public_url is None
    assert settings.admin_emails == {"a@example.com", "b@example.com"}
    assert str(settings.max_payment_usd) == "250.50"


# --- dev sign-in and admins ----------------------------------------------------------------------------


def test_dev_sign_in_never_makes_an_admin_unless_the_setting_allows_it(api: Api, monkeypatch) -> None:
    monkeypatch.delenv("ECHO_DEV_SIGN_IN_GRANTS_ADMIN")
    admin = api.sign_in(ADMIN_EMAIL)
    assert admin.user["role"] == "user"
    other = api.sign_in()
    refused = admin.call("POST", "/api/balance", {"userId": other.user["id"], "amount": "5", "reason": "x"})
    assert refused.status == 403
    monkeypatch.setenv("ECHO_DEV_SIGN_IN_GRANTS_ADMIN", "true")  # the local runner's default
    assert admin.call("GET", "/api/me").body["user"]["role"] == "admin"


# --- fail closed in the cloud ------------------------------------------------------------------------


@pytest.fixture
def secrets_manager(monkeypatch) -> Iterator[Callable[[str], str]]:
    """moto's Secrets Manager; the returned function stores a secret string and returns its ARN."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        client = boto3.client("secretsmanager")

        def store(value: str) -> str:
            arn: str = client.create_secret(Name=f"echo/stripe-{uuid.uuid4().hex}", SecretString=value)["ARN"]
            return arn

        yield store


@pytest.fixture
def stripe_secret(secrets_manager: Callable[[str], str], monkeypatch) -> Callable[[Any], None]:
    """Deploys a Stripe secret with this content, as the template's StripeSecretArn does."""

    def deploy(content: Any) -> None:
        text = content if isinstance(content, str) else json.dumps(content)
        monkeypatch.setenv("STRIPE_SECRET_ARN", secrets_manager(text))

    return deploy


def payment_routes(user: Any, api: Api) -> list[Any]:
    """A payment link through the API and the form, and a webhook signed with the public development secret."""
    event = {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": "checkout.session.completed", "data": {}}
    payload = json.dumps(event)
    return [
        user.call("POST", "/api/stripe/payment-link", {"amount": "20"}),
        api.call(
            "POST",
            "/credits",
            data="amount=20",
            headers={**FORM, "Origin": "http://localhost", "Cookie": f"echo_session={user.token}"},
        ),
        api.call(
            "POST",
            "/api/stripe/webhook",
            data=payload,
            headers={"Stripe-Signature": payments.sign_payload(payload, config.DEV_WEBHOOK_SECRET)},
        ),
    ]


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param({"webhookSecret": "whsec_real"}, id="no secretKey"),
        pytest.param({"secretKey": "sk_live_real"}, id="no webhookSecret"),
        pytest.param({"secretKey": "sk_live_real", "webhookSecret": "whsec_real", "webhookSecert": "x"}, id="typo"),
        pytest.param({"secretkey": "sk_live_real", "webhookSecret": "whsec_real"}, id="misspelt secretKey"),
        pytest.param({"secretKey": "", "webhookSecret": "whsec_real"}, id="empty secretKey"),
        pytest.param('{"secretKey": "sk_live_real", "webhookSecret": "whsec_real"', id="malformed JSON"),
        pytest.param('["sk_live_real", "whsec_real"]', id="not an object"),
    ],
)
def test_a_broken_stripe_secret_is_a_configuration_error_on_every_payment_route(
    api: Api, user: Any, stripe_secret: Callable[[Any], None], secret: Any, monkeypatch, capfd, caplog
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    stripe_secret(secret)
    for reply in payment_routes(user, api):
        assert reply.status == 503, reply.body
        if isinstance(reply.body, dict):  # the /credits form answers with a page
            assert reply.error_code == "configuration_error"
        else:
            assert "not configured correctly" in reply.body
    assert user.call("GET", "/api/payments").body["payments"] == []  # nothing recorded, nothing mocked
    problems = [r.problem for r in caplog.records if r.getMessage() == "configuration error"]  # type: ignore[attr-defined]
    assert len(problems) == 3 and all("Stripe secret" in p for p in problems)
    assert capfd.readouterr().out.count('"ConfigurationError":[1.0]') == 3  # the metric (embedded metric format)


def test_with_a_complete_secret_the_development_webhook_secret_and_the_mock_are_refused(
    api: Api, user: Any, stripe_secret: Callable[[Any], None]
) -> None:
    stripe_secret({"secretKey": "sk_live_real", "webhookSecret": "whsec_real", "connectWebhookSecret": "whsec_conn"})
    _, _, webhook = payment_routes(user, api)
    assert webhook.status == 400 and webhook.error_code == "invalid_signature"
    for secret in (config.DEV_WEBHOOK_SECRET, config.DEV_CONNECT_WEBHOOK_SECRET):
        payload = json.dumps({"id": "evt_x", "object": "event", "type": "account.updated", "data": {}})
        signed = {"Stripe-Signature": payments.sign_payload(payload, secret)}
        refused = api.call("POST", "/api/stripe/webhook", data=payload, headers=signed)
        assert refused.status == 400 and refused.error_code == "invalid_signature"
    session = f"{payments.MOCK_SESSION_PREFIX}{uuid.uuid4().hex}"
    assert api.call("GET", f"/checkout/mock/{session}").status == 404
    assert (
        api.call(
            "POST", f"/checkout/mock/{session}/pay", data="", headers={**FORM, "Origin": "http://localhost"}
        ).status
        == 404
    )


def test_without_a_connect_webhook_secret_in_the_cloud_payouts_fail_closed_and_payments_go_on(
    api: Api, user: Any, stripe_secret: Callable[[Any], None], caplog
) -> None:
    """The Connect secret is optional in the Stripe secret for payments, required for payouts: the payout routes
    answer 503 configuration_error, and an event the platform secret does not verify cannot be a Connect event
    verified with a development secret either (503, not a fallback)."""
    stripe_secret({"secretKey": "sk_live_real", "webhookSecret": "whsec_real"})
    for method, path, body in (("POST", "/api/payouts/account", None), ("POST", "/api/payouts", {"amount": "10"})):
        reply = user.call(method, path, body)
        assert reply.status == 503 and reply.error_code == "configuration_error", (path, reply.body)
    payload = json.dumps({"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": "checkout.session.completed"})
    platform = {"Stripe-Signature": payments.sign_payload(payload, "whsec_real")}
    assert api.call("POST", "/api/stripe/webhook", data=payload, headers=platform).status == 200
    connect = {"Stripe-Signature": payments.sign_payload(payload, config.DEV_CONNECT_WEBHOOK_SECRET)}
    refused = api.call("POST", "/api/stripe/webhook", data=payload, headers=connect)
    assert refused.status == 503 and refused.error_code == "configuration_error"
    assert any("Connect webhook secret is missing" in getattr(r, "problem", "") for r in caplog.records)
    assert user.call("GET", "/api/payouts").body["payouts"] == []


def test_a_malformed_connect_webhook_secret_is_a_configuration_error(
    user: Any, stripe_secret: Callable[[Any], None]
) -> None:
    stripe_secret({"secretKey": "sk_live_real", "webhookSecret": "whsec_real", "connectWebhookSecret": "conn"})
    for reply in (
        user.call("POST", "/api/payouts/account"),
        user.call("POST", "/api/stripe/payment-link", {"amount": "5"}),
    ):
        assert reply.status == 503 and reply.error_code == "configuration_error"


def test_on_lambda_without_any_stripe_secret_payments_fail_closed(api: Api, user: Any, monkeypatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "echo-CreatePaymentLinkFunction")
    for reply in payment_routes(user, api):
        assert reply.status == 503
    for reply in (user.call("POST", "/api/payouts/account"), user.call("POST", "/api/payouts", {"amount": "10"})):
        assert reply.status == 503 and reply.error_code == "configuration_error"
    assert user.call("GET", "/api/payments").body["payments"] == []


def test_a_local_emulator_run_is_local_but_a_secret_arn_is_always_the_cloud(monkeypatch) -> None:
    """sam local invoke and make invoke set AWS_SAM_LOCAL beside Lambda's variables: the local configuration
    applies. A secret ARN means a deployment whatever else is set."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "echo-CreatePaymentLinkFunction")
    config.reload_settings()
    assert config.settings().in_cloud
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")
    config.reload_settings()
    assert not config.settings().in_cloud
    monkeypatch.setenv("STRIPE_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:stripe")
    config.reload_settings()
    assert config.settings().in_cloud


def test_on_lambda_the_mock_checkout_of_an_earlier_local_link_cannot_pay(api: Api, user: Any, monkeypatch) -> None:
    link = user.call("POST", "/api/stripe/payment-link", {"amount": "20"}).body  # made locally: a mock session
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "echo-PayMockCheckoutFunction")
    path = urlparse(link["url"]).path
    assert api.call("GET", path).status == 404
    paid = api.call("POST", f"{path}/pay", data="", headers={**FORM, "Origin": "http://localhost"})
    assert paid.status == 404
    assert user.call("GET", "/api/balance").body["balance"] == "0.000000"


# --- origins -----------------------------------------------------------------------------------------


def event(headers: dict[str, str], **context: str) -> dict[str, Any]:
    return {"path": "/api/stripe/payment-link", "headers": headers, "requestContext": context}


@pytest.mark.parametrize(
    ("request_event", "expected"),
    [
        (event({"Host": "127.0.0.1:3111"}), "http://127.0.0.1:3111"),
        (event({"host": "localhost:3111", "X-Forwarded-Proto": "https"}), "https://localhost:3111"),
        (event({"Host": "[::1]:3000"}), "http://[::1]:3000"),
        (
            event(
                {"Host": "abc123.execute-api.eu-west-1.amazonaws.com", "X-Forwarded-Proto": "https"},
                domainName="abc123.execute-api.eu-west-1.amazonaws.com",
                stage="prod",
                path="/prod/api/stripe/payment-link",
            ),
            "https://abc123.execute-api.eu-west-1.amazonaws.com/prod",
        ),
        (
            event(
                {"Host": "echo.example.com", "X-Forwarded-Proto": "https"},
                domainName="echo.example.com",
                stage="prod",
                path="/api/stripe/payment-link",
            ),
            "https://echo.example.com",
        ),
        (
            event(
                {"Host": "api.example.com", "X-Forwarded-Proto": "https"},
                domainName="api.example.com",
                stage="prod",
                path="/echo/api/stripe/payment-link",  # a base path mapping
            ),
            "https://api.example.com/echo",
        ),
    ],
)
def test_the_public_base_url_is_the_requests_origin(request_event: dict[str, Any], expected: str) -> None:
    assert origins.public_base_url(request_event) == expected


def test_echo_public_url_wins_and_a_bad_host_is_400(monkeypatch) -> None:
    from echo_control.errors import BadRequest

    with pytest.raises(BadRequest):
        origins.public_base_url(event({"Host": "evil.example/x?"}))
    monkeypatch.setenv("ECHO_PUBLIC_URL", "https://echo.example.com/")
    assert origins.public_base_url(event({"Host": "127.0.0.1:3111"})) == "https://echo.example.com"


def test_payment_links_follow_the_origin_and_return_to_a_same_site_path(api: Api, user: Any) -> None:
    reply = user.call("POST", "/api/stripe/payment-link", {"amount": "5"}, headers={"Host": "127.0.0.1:3111"})
    assert reply.body["url"].startswith("http://127.0.0.1:3111/checkout/mock/cs_mock_")
    app = user.create_app()
    cookie = {"Cookie": f"echo_session={user.token}", "Host": "127.0.0.1:3111", "Origin": "http://127.0.0.1:3111"}
    for next_path, expected in (
        (f"/apps/{app['id']}", f"/apps/{app['id']}"),
        ("https://evil.example/steal", "/balance"),
        ("//evil.example/steal", "/balance"),
        ("/\\evil.example", "/balance"),
        ("/balance\r\nSet-Cookie: x=1", "/balance"),
    ):
        data = urlencode({"amount": "5", "next": next_path})
        bought = api.call("POST", "/credits", data=data, headers={**FORM, **cookie})
        assert bought.status == 303
        location = urlparse(bought.headers["Location"])
        assert (location.scheme, location.netloc) == ("http", "127.0.0.1:3111")
        assert parse_qs(location.query)["return"] == [expected]


def test_the_session_cookie_is_secure_when_the_request_came_over_https(api: Api) -> None:
    for proto, secure in (("https", True), ("http", False)):
        reply = api.call(
            "POST",
            "/sign-in",
            data="email=cookie%40example.com",
            headers={**FORM, "Origin": "http://localhost", "X-Forwarded-Proto": proto},
        )
        assert reply.status == 303
        assert ("; Secure" in reply.headers["Set-Cookie"]) is secure


# --- documentation ---------------------------------------------------------------------------------------


def test_every_setting_is_documented_in_the_readme_and_env_example() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Configuration") : readme.index("## Layout")]
    example = (ROOT / ".env.example").read_text()
    for field in config.Settings.model_fields.values():
        assert f"`{field.alias}`" in section, f"{field.alias} is not in README's Configuration section"
        assert re.search(rf"\b{field.alias}\b", example), f"{field.alias} is not in .env.example"
