"""Configuration: every environment variable parsed and validated once per cold start into `Settings`, and the
secrets (Secrets Manager through Powertools in the cloud) checked on first use, failing closed.

`settings()` is cached for the life of the container; each function calls it while it is imported, so a wrong
value stops the cold start with a message naming the variable instead of failing every request. Tests change a
variable with `monkeypatch.setenv` (tests/conftest.py's `monkeypatch` then calls `reload_settings()`).

A plain pydantic model over `os.environ` rather than pydantic-settings: the functions import pydantic anyway,
and pydantic-settings would add ~53 ms to every cold start for what one `model_validate` does here."""

import functools
import json
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from echo_control.errors import ConfigurationError
from echo_control.observability import count, logger

# Used only locally when no webhook secret is configured: the mock checkout signs with it. Never in the cloud.
DEV_WEBHOOK_SECRET = "whsec_echo_local_development_only"  # noqa: S105 - public by design, local only
# The same for events on connected accounts (Stripe Connect): the mock onboarding signs with it. Never in the cloud.
DEV_CONNECT_WEBHOOK_SECRET = "whsec_echo_local_connect_development_only"  # noqa: S105 - public by design, local only
SECRET_MAX_AGE_SECONDS = 300
# The API's ceiling on one payment (models.MAX_PAYMENT; not imported: the migrate function has no models to load).
MAX_PAYMENT = Decimal(10_000)
# The API's ceiling on one payout (models.MAX_PAYOUT, for the same reason).
MAX_PAYOUT = Decimal(1_000_000)
# An origin with an optional base path: no query, no fragment, no credentials.
BASE_URL = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?$"
STRIPE_KEY_PATTERN = r"^(sk|rk)_(test|live)_[A-Za-z0-9_]+$"
WEBHOOK_SECRET_PATTERN = r"^whsec_[A-Za-z0-9_]+$"  # noqa: S105 - a pattern, not a secret
# Variables holding credentials: never echoed in an error message.
SECRET_VARIABLES = {
    "DATABASE_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_CONNECT_WEBHOOK_SECRET",
    "ECHO_DEV_SIGNING_KEY",
    "ECHO_OIDC_CLIENT_SECRET",
    "ECHO_WEBHOOK_KEY",
}


class InvalidConfiguration(RuntimeError):
    """A wrong environment variable: raised while a function starts, never per request."""


def _matching(pattern: str, what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(f"must be {what}")
        return value

    return AfterValidator(check)


BaseUrl = Annotated[
    str,
    _matching(BASE_URL, "an http(s) URL: scheme://host[:port][/path], no query"),
    AfterValidator(lambda url: url.rstrip("/")),
]
StripeKey = Annotated[str, _matching(STRIPE_KEY_PATTERN, "a Stripe secret or restricted key (sk_… or rk_…)")]
WebhookSecret = Annotated[str, _matching(WEBHOOK_SECRET_PATTERN, "a Stripe webhook signing secret (whsec_…)")]


def _emails(value: Any) -> Any:
    if isinstance(value, str):
        return frozenset(e.strip().lower() for e in value.split(",") if e.strip())
    return value


class Settings(BaseModel):
    """Every environment variable Echo Control reads (README "Configuration" and .env.example document each)."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    database_url: str | None = Field(None, alias="DATABASE_URL", repr=False)
    db_secret_arn: str | None = Field(None, alias="DB_SECRET_ARN")
    db_host: str | None = Field(None, alias="DB_HOST")
    db_name: str | None = Field(None, alias="DB_NAME")
    db_sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        "require", alias="DB_SSLMODE"
    )
    stripe_secret_arn: str | None = Field(None, alias="STRIPE_SECRET_ARN")
    stripe_secret_key: StripeKey | None = Field(None, alias="STRIPE_SECRET_KEY", repr=False)
    stripe_webhook_secret: WebhookSecret | None = Field(None, alias="STRIPE_WEBHOOK_SECRET", repr=False)
    stripe_connect_webhook_secret: WebhookSecret | None = Field(None, alias="STRIPE_CONNECT_WEBHOOK_SECRET", repr=False)
    stripe_api_base: BaseUrl | None = Field(None, alias="STRIPE_API_BASE")
    auth_mode: Literal["dev", "clerk", "oidc"] = Field("dev", alias="ECHO_AUTH_MODE")
    admin_emails: Annotated[frozenset[str], BeforeValidator(_emails)] = Field(frozenset(), alias="ECHO_ADMIN_EMAILS")
    dev_sign_in_grants_admin: bool = Field(False, alias="ECHO_DEV_SIGN_IN_GRANTS_ADMIN")
    dev_signing_key: str | None = Field(None, alias="ECHO_DEV_SIGNING_KEY", repr=False)
    jwks_url: BaseUrl | None = Field(None, alias="ECHO_JWKS_URL")
    jwt_issuer: str = Field("echo-control-dev", alias="ECHO_JWT_ISSUER", min_length=1)
    jwt_audience: str = Field("echo-control", alias="ECHO_JWT_AUDIENCE", min_length=1)
    clerk_sign_in_url: BaseUrl | None = Field(None, alias="ECHO_CLERK_SIGN_IN_URL")
    oidc_issuer: BaseUrl | None = Field(None, alias="ECHO_OIDC_ISSUER")
    oidc_client_id: str | None = Field(None, alias="ECHO_OIDC_CLIENT_ID", min_length=1, max_length=256)
    oidc_client_secret: str | None = Field(None, alias="ECHO_OIDC_CLIENT_SECRET", repr=False)
    oidc_client_secret_arn: str | None = Field(None, alias="ECHO_OIDC_CLIENT_SECRET_ARN")
    public_url: BaseUrl | None = Field(None, alias="ECHO_PUBLIC_URL")
    max_payment_usd: Decimal = Field(MAX_PAYMENT, alias="ECHO_MAX_PAYMENT_USD", ge=1, le=MAX_PAYMENT, decimal_places=2)
    rate_limit_per_minute: int = Field(600, alias="ECHO_RATE_LIMIT_PER_MINUTE", ge=1)
    min_payout_usd: Decimal = Field(Decimal(10), alias="ECHO_MIN_PAYOUT_USD", ge=1, le=MAX_PAYOUT, decimal_places=2)
    # Earnings clear this many days after their call before a payout may take them (refunds and disputes come in
    # that window); 0: at once.
    earnings_clearing_days: int = Field(7, alias="ECHO_EARNINGS_CLEARING_DAYS", ge=0, le=365)
    housekeeping_batch_limit: int = Field(5000, alias="ECHO_HOUSEKEEPING_BATCH_LIMIT", ge=1, le=1_000_000)
    data_dir: Path = Field(Path(".data"), alias="ECHO_DATA_DIR")
    # Webhooks to developers (echo_control.webhook_delivery): private targets only for local development; the key
    # that seals endpoint secrets (base64 of 32 bytes), or the secret holding it; the cloud's delivery queue.
    webhooks_allow_private: bool = Field(False, alias="ECHO_WEBHOOKS_ALLOW_PRIVATE")
    webhook_key: str | None = Field(None, alias="ECHO_WEBHOOK_KEY", repr=False)
    webhook_key_secret_arn: str | None = Field(None, alias="WEBHOOK_KEY_SECRET_ARN")
    webhook_queue_url: str | None = Field(None, alias="ECHO_WEBHOOK_QUEUE_URL")
    lambda_function_name: str | None = Field(None, alias="AWS_LAMBDA_FUNCTION_NAME")
    sam_local: bool = Field(False, alias="AWS_SAM_LOCAL")  # set by `sam local invoke` and `make invoke`

    @model_validator(mode="after")
    def _sign_in_is_configured(self) -> "Settings":
        # Without these a deployment would start and then refuse everyone who tries to sign in.
        if self.auth_mode == "oidc" and not (self.oidc_issuer and self.oidc_client_id):
            raise ValueError("ECHO_AUTH_MODE=oidc needs ECHO_OIDC_ISSUER and ECHO_OIDC_CLIENT_ID")
        if self.auth_mode == "clerk" and not (self.clerk_sign_in_url and self.jwks_url):
            raise ValueError("ECHO_AUTH_MODE=clerk needs ECHO_CLERK_SIGN_IN_URL and ECHO_JWKS_URL")
        return self

    @property
    def in_cloud(self) -> bool:
        """On Lambda (not a local emulator run), or configured with a secret ARN: secrets must be real, never
        the development fallbacks."""
        on_lambda = bool(self.lambda_function_name) and not self.sam_local
        return on_lambda or bool(self.stripe_secret_arn or self.db_secret_arn)

    @classmethod
    def from_environment(cls) -> "Settings":
        # An empty variable (a template parameter left blank) means unset.
        values = {name: value for name, value in os.environ.items() if value != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise InvalidConfiguration(_describe(exc, values)) from None


def _describe(exc: ValidationError, values: dict[str, str]) -> str:
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        shown = "" if not name or name in SECRET_VARIABLES else f" (got {values.get(name)!r})"
        problems.append(f"{name or 'settings'}: {error['msg']}{shown}")
    return "Invalid configuration: " + "; ".join(problems)


@functools.cache
def settings() -> Settings:
    """This container's settings, parsed on first use (each function's import) and kept."""
    return Settings.from_environment()


def reload_settings() -> None:
    """Forgets the parsed settings: the next `settings()` reads the environment again (for tests)."""
    settings.cache_clear()


# --- secrets -----------------------------------------------------------------------------------------


def misconfigured(problem: str) -> ConfigurationError:
    """A configuration error found while serving: logged and counted, answered 503, never worked around."""
    logger.error("configuration error", extra={"problem": problem})
    count("ConfigurationError")
    return ConfigurationError("The service is not configured correctly; the operator has been alerted")


def _secret_text(arn: str) -> str:
    # Imported here so functions that never read a secret do not pay for it at cold start.
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(arn, max_age=SECRET_MAX_AGE_SECONDS)
    return value.decode() if isinstance(value, bytes) else str(value)


def _secret_json(arn: str, what: str) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        value = json.loads(_secret_text(arn))
    except GetParameterError as exc:
        raise misconfigured(f"{what} secret cannot be read: {type(exc.__cause__ or exc).__name__}") from None
    except ValueError:
        raise misconfigured(f"{what} secret is not JSON") from None
    if not isinstance(value, dict):
        raise misconfigured(f"{what} secret is not a JSON object")
    return value


def database_url() -> str:
    """DATABASE_URL locally; in the cloud, the RDS Proxy endpoint plus the credentials secret."""
    config = settings()
    if config.database_url:
        return config.database_url
    if not config.db_secret_arn:
        raise misconfigured("set DATABASE_URL, or DB_SECRET_ARN and DB_HOST")
    from psycopg.conninfo import make_conninfo

    secret = _secret_json(config.db_secret_arn, "the database")
    if not secret.get("username") or not secret.get("password"):
        raise misconfigured("the database secret needs username and password")
    return make_conninfo(
        host=config.db_host or secret.get("host"),
        port=str(secret.get("port", 5432)),
        dbname=config.db_name or secret.get("dbname", "echo"),
        user=secret["username"],
        password=secret["password"],
        sslmode=config.db_sslmode,
    )


class StripeCredentials(BaseModel):
    """What the payment functions use. `secret_key` None means the local mock checkout (never in the cloud).

    `connect_webhook_secret` verifies events on connected accounts (payouts); the payment routes work without it,
    the payout routes do not (`connect_credentials`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    secret_key: StripeKey | None = Field(alias="secretKey", repr=False)
    webhook_secret: WebhookSecret = Field(alias="webhookSecret", repr=False)
    connect_webhook_secret: WebhookSecret | None = Field(None, alias="connectWebhookSecret", repr=False)


def stripe_credentials() -> StripeCredentials:
    """The Stripe key and webhook secrets. In the cloud the key and the webhook secret must be present and well
    formed, and the Connect webhook secret well formed if present (from the secret STRIPE_SECRET_ARN names, else
    the variables); anything else is a configuration error, never a fallback."""
    config = settings()
    if config.stripe_secret_arn:
        raw = _secret_json(config.stripe_secret_arn, "the Stripe")
    elif config.in_cloud:
        raw = {
            "secretKey": config.stripe_secret_key,
            "webhookSecret": config.stripe_webhook_secret,
            "connectWebhookSecret": config.stripe_connect_webhook_secret,
        }
    else:  # locally: no key opens the mock checkout and onboarding, which sign with the development secrets
        return StripeCredentials(
            secretKey=config.stripe_secret_key,
            webhookSecret=config.stripe_webhook_secret or DEV_WEBHOOK_SECRET,
            connectWebhookSecret=config.stripe_connect_webhook_secret or DEV_CONNECT_WEBHOOK_SECRET,
        )
    try:
        credentials = StripeCredentials.model_validate(raw)
    except ValidationError as exc:
        fields = ", ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise misconfigured(f"the Stripe secret is wrong ({fields})") from None
    if credentials.secret_key is None:
        raise misconfigured("the Stripe secret has no secretKey")
    return credentials


def oidc_client_secret() -> str | None:
    """The OpenID Connect client's secret: from the secret ECHO_OIDC_CLIENT_SECRET_ARN names (its whole text), else
    ECHO_OIDC_CLIENT_SECRET; None for a public client (PKCE alone)."""
    config = settings()
    if not config.oidc_client_secret_arn:
        return config.oidc_client_secret
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        secret = _secret_text(config.oidc_client_secret_arn).strip()
    except GetParameterError as exc:
        raise misconfigured(f"the OIDC client secret cannot be read: {type(exc.__cause__ or exc).__name__}") from None
    if not secret:
        raise misconfigured("the OIDC client secret is empty")
    return secret


def webhook_key_text() -> str | None:
    """The key that seals developers' webhook secrets: the whole text of the secret WEBHOOK_KEY_SECRET_ARN names,
    else ECHO_WEBHOOK_KEY; None when neither is set (echo_control.webhook_delivery decides what that means)."""
    config = settings()
    if not config.webhook_key_secret_arn:
        return config.webhook_key
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        return _secret_text(config.webhook_key_secret_arn).strip()
    except GetParameterError as exc:
        raise misconfigured(f"the webhook key cannot be read: {type(exc.__cause__ or exc).__name__}") from None


def connect_credentials() -> StripeCredentials:
    """The Stripe credentials for payouts and Connect events: the Connect webhook secret is required as well (in
    the cloud a missing one is a configuration error; locally the development one stands in)."""
    credentials = stripe_credentials()
    if credentials.connect_webhook_secret is None:
        raise misconfigured("the Stripe Connect webhook secret is missing (connectWebhookSecret)")
    return credentials
