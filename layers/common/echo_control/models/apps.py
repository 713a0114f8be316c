"""Echo apps, their usage, and who is calling."""

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from echo_control.models.base import (
    MAX_PRICED_MODELS,
    CamelModel,
    Description,
    Flag,
    Markup,
    Name,
    PerMillion,
    PricedModelName,
    RequestModel,
)
from echo_control.models.keys import ApiKeyOut
from echo_control.models.ledger import TransactionOut


class UsageTotals(CamelModel):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    provider_cost: Decimal = Decimal(0)  # the price of the tokens
    markup_amount: Decimal = Decimal(0)  # the app owner's share
    cost: Decimal = Decimal(0)  # what users paid: providerCost + markupAmount

    @classmethod
    def sum(cls, rows: "Sequence[UsageTotals]") -> "UsageTotals":
        return cls(
            calls=sum(r.calls for r in rows),
            input_tokens=sum(r.input_tokens for r in rows),
            output_tokens=sum(r.output_tokens for r in rows),
            total_tokens=sum(r.total_tokens for r in rows),
            provider_cost=sum((r.provider_cost for r in rows), start=Decimal(0)),
            markup_amount=sum((r.markup_amount for r in rows), start=Decimal(0)),
            cost=sum((r.cost for r in rows), start=Decimal(0)),
        )


class ModelUsage(UsageTotals):
    model: str


class DayUsage(UsageTotals):
    day: date


# Sign in with Echo: where an app may receive a person's authorization code. Exact strings (compared as sent,
# no wildcards); https, or http on the loopback host where a local or native app listens (RFC 8252); no fragment
# and no user info (RFC 6749 3.1.2); ASCII only, the host a name (punycode for others).
MAX_REDIRECT_URIS = 10
MAX_REDIRECT_URI_LENGTH = 2000
_PORT = r"(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
REDIRECT_URI_PATTERN = (
    r"^(?:https://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|http://(?:localhost|127\.0\.0\.1))"
    + _PORT
    + r"(?:[/?][\u0021\u0022\u0024-\u0029\u002b-\u007e]*)?$"  # printable ASCII (RFC 3986) but # and *
)
RedirectUri = Annotated[str, StringConstraints(max_length=MAX_REDIRECT_URI_LENGTH, pattern=REDIRECT_URI_PATTERN)]


def _no_duplicates(uris: list[str]) -> list[str]:
    if len(set(uris)) != len(uris):
        raise ValueError("lists a redirect URI twice")
    return uris


RedirectUris = Annotated[
    list[RedirectUri],
    Field(max_length=MAX_REDIRECT_URIS, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_no_duplicates),
]


class EchoAppCreate(RequestModel):
    name: Name
    description: Description | None = None
    markup: Markup = Decimal(1)
    accepts_customers: Flag = False  # any signed-in user may then make a key for it and become its customer


class EchoAppUpdate(RequestModel):
    # Omit a field to keep it; null is refused (and undocumented) except for description, where it clears it.
    name: Name | SkipJsonSchema[None] = None
    description: Description | None = None
    markup: Markup | SkipJsonSchema[None] = None
    is_active: Flag | SkipJsonSchema[None] = None
    accepts_customers: Flag | SkipJsonSchema[None] = None
    # Sign in with Echo: the whole list, replacing the previous one ([] removes them all)
    redirect_uris: RedirectUris | SkipJsonSchema[None] = None

    @field_validator("name", "markup", "is_active", "accepts_customers", "redirect_uris")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be omitted but not null")
        return value


class EchoAppOut(CamelModel):
    id: str
    name: str
    description: str | None
    user_id: str
    markup: Decimal
    is_active: bool
    accepts_customers: bool = False
    redirect_uris: list[str] = []  # Sign in with Echo: where the app may receive authorization codes
    created_at: datetime
    updated_at: datetime
    totals: UsageTotals | None = None
    # Seed compatibility: its CLI lists apps with these (all-time, from `totals`).
    total_tokens: int | None = None
    total_cost: Decimal | None = None


class EchoAppPublic(CamelModel):
    """What a customer (or someone invited to become one) sees of an app: never its keys, usage or earnings."""

    id: str
    name: str
    description: str | None
    markup: Decimal


class CustomerOut(CamelModel):
    user_id: str
    email: str
    first_seen: datetime  # their first key for the app
    calls: int
    spent: Decimal  # what their calls to this app cost them


class CustomerList(CamelModel):
    customers: list[CustomerOut]


class EchoAppList(CamelModel):
    echo_apps: list[EchoAppOut]


class SeedAppStats(CamelModel):
    """An app's all-time usage as the seed's clients read it (`echoApp.stats`)."""

    total_transactions: int
    total_tokens: int
    total_input_tokens: int
    total_output_tokens: int
    total_cost: Decimal
    model_usage: list[ModelUsage]


class SeedEchoApp(EchoAppOut):
    """The app as the seed's `GET /api/echo-apps/{id}` answered it, under `echoApp`."""

    stats: SeedAppStats
    recent_transactions: list[TransactionOut]


class EchoAppDetail(EchoAppOut):
    usage_by_model: list[ModelUsage]
    api_keys: list[ApiKeyOut]
    recent_transactions: list[TransactionOut]
    echo_app: SeedEchoApp  # seed compatibility


class EchoAppCreated(EchoAppOut):
    echo_app: EchoAppOut  # seed compatibility: the same app under the seed's wrapper


class UsageOut(CamelModel):
    echo_app_id: str
    since: date
    until: date
    totals: UsageTotals
    by_model: list[ModelUsage]
    by_day: list[DayUsage]


# --- an app's own prices -----------------------------------------------------------------------------


class PriceOverride(RequestModel):
    """The app's price for one model, USD per million tokens; a cache price left null charges those tokens at the
    input price."""

    model: PricedModelName
    input_per_million: PerMillion
    output_per_million: PerMillion
    cache_read_per_million: PerMillion | None = None
    cache_write_per_million: PerMillion | None = None


def _distinct(names: list[str]) -> list[str]:
    from echo_control import pricing

    seen: dict[str, str] = {}
    for name in names:
        key = pricing.model_key(name)
        if key in seen:
            raise PydanticCustomError(
                "duplicate_model",
                "'{name}' is the same model as '{first}' (names match without case or a provider prefix)",
                {"name": name, "first": seen[key]},
            )
        seen[key] = name
    return names


class AppPrices(RequestModel):
    """What an app allows and charges: `allowedModels` null allows every model; overrides win over the
    genai-prices data and price models it does not know (a fine-tune)."""

    allowed_models: Annotated[list[PricedModelName], Field(max_length=MAX_PRICED_MODELS)] | None = None
    overrides: Annotated[list[PriceOverride], Field(max_length=MAX_PRICED_MODELS)] = []

    @field_validator("allowed_models")
    @classmethod
    def _distinct_allowed(cls, names: list[str] | None) -> list[str] | None:
        return None if names is None else _distinct(names)

    @field_validator("overrides")
    @classmethod
    def _distinct_overrides(cls, overrides: list[PriceOverride]) -> list[PriceOverride]:
        _distinct([o.model for o in overrides])
        return overrides
