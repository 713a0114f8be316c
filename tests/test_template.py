"""template.yaml: least privilege per function, and the development-only functions behind a condition."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_runner import template
from local_runner.lambdas import LambdaContext, load_handler

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "DatabaseSecretArn"
STRIPE = "StripeSecretArn"
WEBHOOK_KEY = "WebhookKeySecret"

# The secrets each function reads. Everything that touches PostgreSQL reads the database secret; only what
# creates checkouts or verifies Stripe's signatures reads the Stripe secret. The rest read none: the API's
# documents and the mock checkout (which in the cloud always answers 404). Sign-in and sign-out read the database:
# sessions and OpenID Connect sign-ins are rows.
NO_SECRET = {"GetOpenapiDocumentFunction", "ListModelsFunction", "ShowApiDocsFunction"}
NO_SECRET |= {"ShowMockCheckoutFunction", "PayMockCheckoutFunction"}
NO_SECRET |= {"ShowMockOnboardingFunction", "CompleteMockOnboardingFunction"}
NO_SECRET |= {"ShowMockSetupFunction", "CompleteMockSetupFunction"}
PAYMENT_FUNCTIONS = {"CreatePaymentLinkFunction", "BuyCreditsFunction", "StripeWebhookFunction"}
# Payouts make Stripe Connect accounts and transfers (the API and the earnings page's forms).
PAYMENT_FUNCTIONS |= {
    "CreatePayoutAccountFunction",
    "CreatePayoutFunction",
    "StartOnboardingPageFunction",
    "CreatePayoutPageFunction",
}
# Automatic top-up saves cards (API and the balance page's form) and charges them (the scheduled worker).
PAYMENT_FUNCTIONS |= {"CreateSetupLinkFunction", "StartCardSetupPageFunction", "ChargeAutoTopUpsFunction"}
# Custom resources' functions, in the cloud only: the Cognito client's settings (Cognito's API, no secret).
CLOUD_ONLY = {"ConfigureSignInFunction"}
# What exists only for local development: dev sign-in (API and form), the mock checkout and the mock onboarding.
DEVELOPMENT_ONLY = {"CreateDevSessionFunction", "SignInFunction", "ShowMockCheckoutFunction", "PayMockCheckoutFunction"}
DEVELOPMENT_ONLY |= {"ShowMockOnboardingFunction", "CompleteMockOnboardingFunction"}
DEVELOPMENT_ONLY |= {"ShowMockSetupFunction", "CompleteMockSetupFunction"}


# Webhooks to developers: what seals an endpoint's signing secret (adding one) or opens it (sending) reads the key.
WEBHOOK_KEY_FUNCTIONS = {"CreateWebhookFunction", "DeliverWebhooksFunction", "CreateWebhookPageFunction"}
# The policies besides reading secrets: the webhook relay sends to the webhook queue, the delivery function polls it
# and changes a message's visibility (its backoff).
OTHER_POLICIES = {
    "RelayWebhooksFunction": [{"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["WebhookQueue", "QueueName"]}}}],
    "DeliverWebhooksFunction": [{"SQSPollerPolicy": {"QueueName": {"Fn::GetAtt": ["WebhookQueue", "QueueName"]}}}],
}


def secrets_of(name: str) -> set[str]:
    if name in NO_SECRET | CLOUD_ONLY:
        return set()
    if name in WEBHOOK_KEY_FUNCTIONS:
        return {DATABASE, WEBHOOK_KEY}
    return {DATABASE, STRIPE} if name in PAYMENT_FUNCTIONS else {DATABASE}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=template._CfnLoader)  # noqa: S506 - SafeLoader


def functions(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in doc["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def refs(value: Any) -> set[str]:
    """Every parameter or resource a piece of the template refers to."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return {value["Ref"]}
        return set().union(*(refs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(refs(v) for v in value)) if value else set()
    return set()


def secrets_named(value: Any) -> set[str]:
    """The secrets a piece of template names: the given one or, when the stack makes it, the one it makes."""
    names = refs(value)
    assert not names & {"StripeSecret"} or STRIPE in names, "the made Stripe secret, but not the given one"
    return names & {DATABASE, STRIPE, WEBHOOK_KEY}


# A secret's ARN, everywhere a function names it: the one the stack makes, or the parameter's.
SECRET_ARNS = {
    DATABASE: {"Fn::If": ["CreatesDatabase", {"Ref": "DatabaseSecret"}, {"Ref": DATABASE}]},
    STRIPE: {"Fn::If": ["CreatesStripeSecret", {"Ref": "StripeSecret"}, {"Ref": STRIPE}]},
    WEBHOOK_KEY: {"Ref": WEBHOOK_KEY},  # always the stack's own
}


def test_each_function_reads_exactly_the_secrets_it_uses(doc: dict[str, Any]) -> None:
    found = functions(doc)
    assert set(found) >= NO_SECRET | PAYMENT_FUNCTIONS | DEVELOPMENT_ONLY | CLOUD_ONLY
    for name, resource in found.items():
        props = resource["Properties"]
        assert "Role" not in props, f"{name}: a shared role would carry other functions' rights"
        environment = props.get("Environment", {}).get("Variables", {})
        secret_env = {k: v for k, v in environment.items() if k.endswith("_SECRET_ARN")}
        policies = [p for p in props.get("Policies", []) if p not in OTHER_POLICIES.get(name, [])]
        templates = [
            p["AWSSecretsManagerGetSecretValuePolicy"] for p in policies if "AWSSecretsManagerGetSecretValuePolicy" in p
        ]
        assert all(
            set(p) == {"Statement"} and "secretsmanager" not in json.dumps(p)
            for p in policies
            if p not in [{"AWSSecretsManagerGetSecretValuePolicy": t} for t in templates]
        ), name
        readable = secrets_named(templates)
        assert secrets_named(secret_env) == readable == secrets_of(name), name
        for value in [*secret_env.values(), *(t["SecretArn"] for t in templates)]:
            assert value in SECRET_ARNS.values(), (name, value)
        if DATABASE not in readable:
            assert not {"DB_HOST", "DB_NAME"} & set(environment), name


def test_no_secret_is_given_to_every_function_at_once(doc: dict[str, Any]) -> None:
    assert not {DATABASE, STRIPE} & refs(doc["Globals"]), "Globals reach every function"
    roles = [r for r in doc["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert not any({DATABASE, STRIPE} & refs(role) for role in roles)


def test_development_only_functions_exist_only_in_a_development_deployment(doc: dict[str, Any]) -> None:
    assert doc["Conditions"]["IsDevelopment"] == {"Fn::Equals": [{"Ref": "DeploymentType"}, "development"]}
    conditional = {name for name, res in functions(doc).items() if res.get("Condition") == "IsDevelopment"}
    assert conditional == DEVELOPMENT_ONLY
    assert doc["Parameters"]["DeploymentType"]["Default"] == "production"
    # AuthMode=dev (sign in with just an email) is refused unless the deployment is a development one
    rule = doc["Rules"]["DevSignInOnlyInDevelopment"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "AuthMode"}, "dev"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Equals": [{"Ref": "DeploymentType"}, "development"]}
    # and the local runner, a development deployment, serves them
    served = {route.function for route in template.load().routes}
    assert served >= DEVELOPMENT_ONLY


@pytest.mark.parametrize("name", sorted(NO_SECRET))
def test_a_function_given_no_secret_works_without_any(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks the map against the code: in the cloud, with no database and no Stripe secret, it still answers."""
    code_dir = template.load().functions[name]
    event = json.loads((ROOT / "events" / f"{code_dir.name}.json").read_text())
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", name)
    for variable in ("DATABASE_URL", "DB_SECRET_ARN", "STRIPE_SECRET_ARN", "STRIPE_SECRET_KEY"):
        monkeypatch.delenv(variable, raising=False)
    result = load_handler(code_dir)(event, LambdaContext(code_dir.name))
    assert result["statusCode"] < 500, result["body"]


# --- API Gateway access logs -------------------------------------------------------------------------------

# What each access log line must say, and where API Gateway takes it from.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "caller": "$context.authorizer.principalId",
    "userId": "$context.authorizer.userId",
    "httpMethod": "$context.httpMethod",
    "path": "$context.path",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "responseLatency": "$context.responseLatency",
    "ip": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
}
# $context variables of REST APIs' access logs (API Gateway's "Variables for access logging") that are not the
# authorizer's context: a misspelt variable would log "-" forever, silently.
ACCESS_LOG_VARIABLES = {
    "$context.requestId",
    "$context.extendedRequestId",
    "$context.requestTimeEpoch",
    "$context.httpMethod",
    "$context.path",
    "$context.resourcePath",
    "$context.stage",
    "$context.status",
    "$context.responseLength",
    "$context.responseLatency",
    "$context.integration.latency",
    "$context.authorizer.latency",
    "$context.authorizer.principalId",
    "$context.error.responseType",
    "$context.identity.sourceIp",
    "$context.identity.userAgent",
    "$context.xrayTraceId",
}


def test_api_access_logs_are_json_lines_naming_the_caller_and_the_request(doc: dict[str, Any]) -> None:
    api = doc["Resources"]["EchoApi"]
    setting = api["Properties"]["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    group = doc["Resources"]["ApiAccessLogGroup"]
    assert group["Type"] == "AWS::Logs::LogGroup" and group["Properties"]["RetentionInDays"]
    assert "\n" not in setting["Format"], "API Gateway writes one line per request"
    fields = json.loads(setting["Format"])
    assert fields.items() >= ACCESS_LOG_FIELDS.items()
    # every value one quoted variable (an absent one logs as "-", still JSON): a documented one, or a key of the
    # authorizer's context (checked against the authorizer below)
    for value in fields.values():
        assert value in ACCESS_LOG_VARIABLES or re.fullmatch(r"\$context\.authorizer\.[A-Za-z]+", value), value
    # nothing that identifies a person beyond the user id: no email, no header, no body
    assert not any(word in setting["Format"] for word in ("email", "$input", "header", "requestOverride"))


def test_the_authorizer_context_the_access_log_reads_is_what_the_authorizer_returns(doc: dict[str, Any]) -> None:
    from local_runner import samples

    fields = json.loads(doc["Resources"]["EchoApi"]["Properties"]["AccessLogSetting"]["Format"])
    logged = {
        v.removeprefix("$context.authorizer.")
        for v in fields.values()
        if v.startswith("$context.authorizer.") and v not in ACCESS_LOG_VARIABLES
    }
    assert logged == {"userId", "authType", "apiKeyId", "echoAppId"}
    samples.load_sample_rows()
    event = json.loads((ROOT / "events" / "authorizer.json").read_text())
    answer = load_handler(template.load().authorizer_dir)(event, LambdaContext("authorizer"))
    assert logged <= set(answer["context"]), "the log would read a key the authorizer never returns"
    assert answer["principalId"] == answer["context"]["userId"]


def test_the_stage_logs_only_once_the_accounts_logging_role_is_set(doc: dict[str, Any]) -> None:
    resources = doc["Resources"]
    assert doc["Conditions"]["CreatesApiGatewayLogRole"] == {"Fn::Equals": [{"Ref": "ApiGatewayLogRole"}, "create"]}
    assert doc["Parameters"]["ApiGatewayLogRole"]["AllowedValues"] == ["create", "existing"]
    account = resources["ApiGatewayAccount"]
    assert account["Type"] == "AWS::ApiGateway::Account" and account["Condition"] == "CreatesApiGatewayLogRole"
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}
    role = resources["ApiGatewayCloudWatchRole"]
    assert role["DeletionPolicy"] == "Retain" and role["Condition"] == "CreatesApiGatewayLogRole"
    assert "ApiGatewayAccountReady" in resources["EchoApi"]["DependsOn"]
    ready = resources["ApiGatewayAccountReady"]["Metadata"]["Account"]
    assert ready == {"Fn::If": ["CreatesApiGatewayLogRole", {"Ref": "ApiGatewayAccount"}, "existing"]}
