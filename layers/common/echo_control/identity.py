"""Who is calling, as the authorizer described them: no web, no SQL, so every layer module may use it."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from echo_control.errors import Forbidden


def as_uuid(value: str | UUID | None) -> UUID | None:
    """A path or body id as a UUID, or None when it cannot be one (callers answer 404)."""
    if value is None or isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None


@dataclass(frozen=True)
class Caller:
    """Who the authorizer let in: a signed-in user, or an API key acting for its user and app."""

    user_id: UUID
    email: str
    role: str
    auth_type: str  # "user" or "apiKey"
    echo_app_id: UUID | None = None
    api_key_id: UUID | None = None
    app_markup: Decimal | None = None
    # How many times the key's app's own prices (allowed models, overrides) changed: 0 never; None, not said.
    app_prices_version: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def caller_from_context(context: dict[str, Any]) -> Caller:
    """The Caller described by an authorizer context (see auth.authenticate)."""
    user_id = as_uuid(context.get("userId"))
    if user_id is None:
        # Public routes never ask; a protected route without authorizer context is a deployment error.
        raise Forbidden("No authenticated caller")
    return Caller(
        user_id=user_id,
        email=context.get("email", ""),
        role=context.get("role", "user"),
        auth_type=context.get("authType", "user"),
        echo_app_id=as_uuid(context.get("echoAppId")),
        api_key_id=as_uuid(context.get("apiKeyId")),
        app_markup=Decimal(context["appMarkup"]) if context.get("appMarkup") else None,
        app_prices_version=int(version) if (version := str(context.get("appPricesVersion"))).isdigit() else None,
    )
