"""Configuration: environment variables locally, Secrets Manager (through Powertools) in the cloud."""

import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

# Used only when no webhook secret is configured: the local mock checkout signs with it.
DEV_WEBHOOK_SECRET = "whsec_echo_local_development_only"  # noqa: S105 - public by design, local only
SECRET_MAX_AGE_SECONDS = 300


def _get_secret_json(arn: str) -> dict:
    # Imported here so functions that never read a secret do not pay for it at cold start.
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(arn, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
    assert isinstance(value, dict)
    return value


def database_url() -> str:
    """DATABASE_URL locally; in the cloud, the RDS Proxy endpoint plus the credentials secret."""
    if url := os.environ.get("DATABASE_URL"):
        return url
    arn = os.environ.get("DB_SECRET_ARN")
    if not arn:
        raise RuntimeError("Set DATABASE_URL, or DB_SECRET_ARN and DB_HOST")
    from psycopg.conninfo import make_conninfo

    secret = _get_secret_json(arn)
    return make_conninfo(
        host=os.environ.get("DB_HOST") or secret["host"],
        port=str(secret.get("port", 5432)),
        dbname=os.environ.get("DB_NAME") or secret.get("dbname", "echo"),
        user=secret["username"],
        password=secret["password"],
        sslmode=os.environ.get("DB_SSLMODE", "require"),
    )


@dataclass(frozen=True)
class StripeSettings:
    api_key: str | None  # None: no Stripe account, the local mock checkout is used
    webhook_secret: str
    api_base: str | None  # lets tests point the SDK at a fake Stripe on loopback


def stripe_settings() -> StripeSettings:
    arn = os.environ.get("STRIPE_SECRET_ARN")
    secret = _get_secret_json(arn) if arn else {}
    return StripeSettings(
        api_key=secret.get("secretKey") or os.environ.get("STRIPE_SECRET_KEY") or None,
        webhook_secret=secret.get("webhookSecret") or os.environ.get("STRIPE_WEBHOOK_SECRET") or DEV_WEBHOOK_SECRET,
        api_base=os.environ.get("STRIPE_API_BASE") or None,
    )


def auth_mode() -> str:
    mode = os.environ.get("ECHO_AUTH_MODE", "dev")
    if mode not in ("dev", "clerk"):
        raise RuntimeError("ECHO_AUTH_MODE must be dev or clerk")
    return mode


def admin_emails() -> frozenset[str]:
    raw = os.environ.get("ECHO_ADMIN_EMAILS", "")
    return frozenset(e.strip().lower() for e in raw.split(",") if e.strip())


def jwt_issuer() -> str:
    return os.environ.get("ECHO_JWT_ISSUER", "echo-control-dev")


def jwt_audience() -> str:
    return os.environ.get("ECHO_JWT_AUDIENCE", "echo-control")


def jwks_url() -> str | None:
    return os.environ.get("ECHO_JWKS_URL") or None


def data_dir() -> Path:
    return Path(os.environ.get("ECHO_DATA_DIR", ".data"))


def public_base_url() -> str:
    return os.environ.get("ECHO_PUBLIC_URL", "http://localhost:3000").rstrip("/")


def max_payment_usd() -> Decimal:
    """The largest credit purchase: ECHO_MAX_PAYMENT_USD, never above the API's ceiling (models.MAX_PAYMENT)."""
    from echo_control.models import MAX_PAYMENT

    return min(Decimal(os.environ.get("ECHO_MAX_PAYMENT_USD", str(MAX_PAYMENT))), MAX_PAYMENT)


def rate_limit_per_minute() -> int:
    return int(os.environ.get("ECHO_RATE_LIMIT_PER_MINUTE", "600"))
