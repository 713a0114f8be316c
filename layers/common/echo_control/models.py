"""The API contract: request and response bodies (camelCase JSON, money as decimal strings of USD)."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

# Bounds the API promises (and documents in OpenAPI).
MAX_NAME_LENGTH = 100
MAX_DESCRIPTION_LENGTH = 1000
MAX_TOKENS = 10_000_000
MAX_COST = Decimal("9999.999999")  # NUMERIC(10, 6)
MAX_ADJUSTMENT = Decimal("1000000")
MAX_METADATA_KEYS = 50
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50

TransactionStatus = Literal["success", "error", "timeout"]
PaymentStatus = Literal["pending", "completed", "failed", "refunded"]


def _no_control_characters(value: str) -> str:
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value) or "\x7f" in value:
        raise ValueError("must not contain control characters")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_LENGTH),
    AfterValidator(_no_control_characters),
]
Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_DESCRIPTION_LENGTH),
    AfterValidator(_no_control_characters),
]
ModelName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:/@+-]+$"),
]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, max_length=320, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"),
]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Markup = Annotated[Decimal, Field(ge=1, le=100, max_digits=8, decimal_places=4, allow_inf_nan=False)]
Usd = Annotated[Decimal, Field(allow_inf_nan=False, max_digits=18, decimal_places=6)]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class RequestModel(CamelModel):
    # A field a client may not set (owner, id, balance, timestamp) is refused, never applied.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# --- errors ------------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


# --- users and sessions ------------------------------------------------------------------------------


class UserOut(CamelModel):
    id: str
    email: str
    name: str | None = None
    role: Literal["user", "admin"]


class DevSessionIn(RequestModel):
    email: Email
    name: Name | None = None


class DevSessionOut(CamelModel):
    token: str
    user: UserOut


# --- echo apps ---------------------------------------------------------------------------------------


class UsageTotals(CamelModel):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost: Decimal = Decimal(0)


class ModelUsage(UsageTotals):
    model: str


class DayUsage(UsageTotals):
    day: date


class EchoAppCreate(RequestModel):
    name: Name
    description: Description | None = None
    markup: Markup = Decimal(1)


class EchoAppUpdate(RequestModel):
    name: Name | None = None
    description: Description | None = None
    markup: Markup | None = None
    is_active: bool | None = None

    @field_validator("name", "markup", "is_active")
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
    created_at: datetime
    updated_at: datetime
    totals: UsageTotals | None = None


class EchoAppList(CamelModel):
    echo_apps: list[EchoAppOut]


class ApiKeyOut(CamelModel):
    id: str
    name: str | None
    key_prefix: str
    last4: str
    echo_app_id: str
    user_id: str
    is_active: bool
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class TransactionOut(CamelModel):
    id: str
    model: str
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: Decimal
    status: TransactionStatus
    user_id: str
    echo_app_id: str | None
    metadata: dict[str, Any] | None = None
    created_at: datetime


class EchoAppDetail(EchoAppOut):
    usage_by_model: list[ModelUsage]
    api_keys: list[ApiKeyOut]
    recent_transactions: list[TransactionOut]


class UsageOut(CamelModel):
    echo_app_id: str
    since: date
    until: date
    totals: UsageTotals
    by_model: list[ModelUsage]
    by_day: list[DayUsage]


# --- api keys ----------------------------------------------------------------------------------------


class ApiKeyCreate(RequestModel):
    echo_app_id: Id
    name: Name | None = None
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a time zone, e.g. 2027-01-01T00:00:00Z")
        return value


class ApiKeyCreated(ApiKeyOut):
    key: str  # the only time the full key is ever shown


class ApiKeyList(CamelModel):
    api_keys: list[ApiKeyOut]


class ValidateApiKeyIn(RequestModel):
    api_key: Annotated[str, StringConstraints(max_length=200)]


class ValidateApiKeyOut(CamelModel):
    valid: bool
    user_id: str | None = None
    echo_app_id: str | None = None


class MeOut(CamelModel):
    user: UserOut
    auth_type: Literal["user", "apiKey"]
    echo_app: EchoAppOut | None = None


# --- balance and transactions ------------------------------------------------------------------------


class BalanceOut(CamelModel):
    user_id: str
    balance: Decimal
    total_paid: Decimal
    total_spent: Decimal
    currency: Literal["usd"] = "usd"


class BalanceAdjust(RequestModel):
    user_id: Id
    amount: Annotated[Usd, Field(ge=-MAX_ADJUSTMENT, le=MAX_ADJUSTMENT)]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    # The seed's clients send a positive amount with an operation; others send a signed amount.
    operation: Literal["increment", "decrement"] | None = None
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None

    def signed_amount(self) -> Decimal:
        if self.operation == "decrement":
            return -abs(self.amount) if self.amount > 0 else self.amount
        return self.amount


class TransactionCreate(RequestModel):
    model: ModelName
    input_tokens: Tokens
    output_tokens: Tokens
    total_tokens: Annotated[int, Field(ge=0, le=2 * MAX_TOKENS)] | None = None
    cost: Annotated[Decimal, Field(ge=0, le=MAX_COST, decimal_places=6, allow_inf_nan=False)] | None = None
    status: TransactionStatus = "success"
    metadata: dict[str, Any] | None = None

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} keys")
        return value


class TransactionRecorded(TransactionOut):
    balance: Decimal  # what remains after this call


class TransactionPage(CamelModel):
    transactions: list[TransactionOut]
    next_cursor: str | None


# --- payments ----------------------------------------------------------------------------------------


class PaymentLinkIn(RequestModel):
    amount: Annotated[Decimal, Field(ge=1, decimal_places=2, allow_inf_nan=False)]
    echo_app_id: Id | None = None


class PaymentLinkOut(CamelModel):
    url: str
    payment_id: str
    session_id: str


class PaymentOut(CamelModel):
    id: str
    amount: int  # cents, as in the seed
    amount_refunded: int
    currency: str
    status: PaymentStatus
    stripe_payment_id: str | None
    echo_app_id: str | None
    created_at: datetime
    updated_at: datetime


class PaymentList(CamelModel):
    payments: list[PaymentOut]


class WebhookAck(CamelModel):
    received: bool
    applied: bool
