"""template.yaml: least privilege per function, and the development-only functions behind a condition."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_runner import template
from local_runner.lambdas import LambdaContext, load_handler

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "DatabaseSecretArn"
STRIPE = "StripeSecretArn"

# The secrets each function reads. Everything that touches PostgreSQL reads the database secret; only what
# creates checkouts or verifies Stripe's signatures reads the Stripe secret. The rest read none: the API's
# documents, the sign-in page and sign-out, and the mock checkout (which in the cloud always answers 404).
NO_SECRET = {
    "GetOpenapiDocumentFunction",
    "ListModelsFunction",
    "ShowApiDocsFunction",
    "ShowSignInFunction",
    "SignOutFunction",
}
NO_SECRET |= {"ShowMockCheckoutFunction", "PayMockCheckoutFunction"}
NO_SECRET |= {"ShowMockOnboardingFunction", "CompleteMockOnboardingFunction"}
PAYMENT_FUNCTIONS = {"CreatePaymentLinkFunction", "BuyCreditsFunction", "StripeWebhookFunction"}
# Payouts make Stripe Connect accounts and transfers (the API and the earnings page's forms).
PAYMENT_FUNCTIONS |= {
    "CreatePayoutAccountFunction",
    "CreatePayoutFunction",
    "StartOnboardingPageFunction",
    "CreatePayoutPageFunction",
}
# What exists only for local development: dev sign-in (API and form), the mock checkout and the mock onboarding.
DEVELOPMENT_ONLY = {"CreateDevSessionFunction", "SignInFunction", "ShowMockCheckoutFunction", "PayMockCheckoutFunction"}
DEVELOPMENT_ONLY |= {"ShowMockOnboardingFunction", "CompleteMockOnboardingFunction"}


def secrets_of(name: str) -> set[str]:
    if name in NO_SECRET:
        return set()
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


def test_each_function_reads_exactly_the_secrets_it_uses(doc: dict[str, Any]) -> None:
    found = functions(doc)
    assert set(found) >= NO_SECRET | PAYMENT_FUNCTIONS | DEVELOPMENT_ONLY
    for name, resource in found.items():
        props = resource["Properties"]
        assert "Role" not in props, f"{name}: a shared role would carry other functions' rights"
        environment = props.get("Environment", {}).get("Variables", {})
        secret_env = refs({k: v for k, v in environment.items() if k.endswith("_SECRET_ARN")})
        policies = props.get("Policies", [])
        readable = {ref for policy in policies for ref in refs(policy.get("AWSSecretsManagerGetSecretValuePolicy", {}))}
        assert all(set(p) == {"AWSSecretsManagerGetSecretValuePolicy"} for p in policies), name
        assert secret_env == readable == secrets_of(name), name
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
