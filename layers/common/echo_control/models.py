"""The API contract: request and response bodies (camelCase JSON, money as decimal strings of USD)."""

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

# Bounds the API promises (and documents in OpenAPI).
MAX_NAME_LENGTH = 100
MAX_DESCRIPTION_LENGTH = 1000
MAX_REASON_LENGTH = 500
MAX_TOKENS = 10_000_000
MAX_COST = Decimal("9999.999999")  # NUMERIC(10, 6)
MAX_ADJUSTMENT = Decimal("1000000")
MIN_PAYMENT, MAX_PAYMENT = Decimal(1), Decimal(10_000)
MAX_METADATA_KEYS = 50
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50

TransactionStatus = Literal["success", "error", "timeout"]
PaymentStatus = Literal["pending", "completed", "failed", "refunded"]


# Whitespace and control characters spelled out, so the OpenAPI patterns and the validators agree exactly
# (regex \s differs between Python and the ECMA dialect JSON Schema uses).
SPACES = " \u0085\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000\ufeff"
_SPACE = r" \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_CONTROL = r"\u0000-\u001f\u007f"
_TEXT_CONTROL = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f"  # tab, LF and CR allowed
SINGLE_LINE_PATTERN = f"^[^{_CONTROL}]*[^{_CONTROL}{_SPACE}][^{_CONTROL}]*$"
MULTI_LINE_PATTERN = f"^[^{_TEXT_CONTROL}]*$"
EMAIL_PATTERN = f"^[^@{_SPACE}{_CONTROL}]{{1,64}}@[^@{_SPACE}{_CONTROL}]+\\.[^@{_SPACE}{_CONTROL}]+$"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9._:/@+-]+$"
NO_NUL = r"^[^\u0000]*$"  # PostgreSQL text cannot hold NUL; the API refuses it everywhere (400)
MARKUP_PATTERN = r"^(?:100(?:\.0{1,4})?|[1-9][0-9]?(?:\.[0-9]{1,4})?)$"
ADJUSTMENT_PATTERN = r"^-?(?:1000000(?:\.0{1,6})?|[0-9]{1,6}(?:\.[0-9]{1,6})?)$"
COST_PATTERN = r"^[0-9]{1,4}(?:\.[0-9]{1,6})?$"
PAYMENT_PATTERN = r"^(?:10000(?:\.0{1,2})?|[1-9][0-9]{0,3}(?:\.[0-9]{1,2})?)$"


def _json_integer(value: Any) -> Any:
    # A JSON integer (2 or 2.0), not a string or a boolean, which Python's int() would also take.
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON integer")
    return value


def _iso_text(value: Any) -> Any:
    # ISO 8601 text only: pydantic would also read a number as a Unix timestamp, which the contract does not offer.
    if isinstance(value, str) and not re.match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ValueError("must be an ISO 8601 date or RFC 3339 date-time, e.g. 2027-01-01T00:00:00Z")
    if not isinstance(value, str | date):
        raise ValueError("must be an ISO 8601 date or RFC 3339 date-time string")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must include a time zone, e.g. 2027-01-01T00:00:00Z")
    return value


def _trim(value: str) -> str:
    return value.strip(SPACES + "\t\r\n")


class ExactDecimal:
    """An exact amount sent as a JSON string; the pattern is the whole rule (range and decimal places)."""

    def __init__(self, pattern: str, description: str, example: str) -> None:
        self.regex = re.compile(pattern)
        self.description, self.example = description, example
        self.validator = PlainValidator(self.parse, json_schema_input_type=str)
        self.serializer = PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json")
        self.schema = WithJsonSchema(
            {"type": "string", "pattern": pattern, "description": description, "examples": [example]}
        )

    def parse(self, value: Any) -> Decimal:
        text = format(value, "f") if isinstance(value, Decimal) else value
        if not isinstance(text, str) or not self.regex.match(text):
            raise ValueError(f"must be a decimal string, {self.description} (e.g. {self.example!r})")
        return Decimal(text)


_MARKUP = ExactDecimal(MARKUP_PATTERN, "from 1 to 100, at most 4 decimal places", "1.25")
_ADJUSTMENT = ExactDecimal(ADJUSTMENT_PATTERN, "USD, signed, at most 1,000,000 and 6 decimal places", "25.00")
_COST = ExactDecimal(COST_PATTERN, "USD from 0 to 9999.999999", "0.002150")
_PAYMENT = ExactDecimal(
    PAYMENT_PATTERN, "USD from 1 to 10,000 in cents (a deployment may cap it lower: ECHO_MAX_PAYMENT_USD)", "20.00"
)

# Trimmed one-line text with at least one visible character; lengths count before trimming.
Name = Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH, pattern=SINGLE_LINE_PATTERN), AfterValidator(_trim)]
Reason = Annotated[
    str, StringConstraints(max_length=MAX_REASON_LENGTH, pattern=SINGLE_LINE_PATTERN), AfterValidator(_trim)
]
Description = Annotated[
    str, StringConstraints(max_length=MAX_DESCRIPTION_LENGTH, pattern=MULTI_LINE_PATTERN), AfterValidator(_trim)
]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=MODEL_NAME_PATTERN)]
Email = Annotated[str, StringConstraints(max_length=320, pattern=EMAIL_PATTERN), AfterValidator(str.lower)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=100)]
MetadataValue = Annotated[str, StringConstraints(max_length=1000)] | StrictInt | StrictFloat | StrictBool | None
METADATA_SCHEMA = {
    "type": "object",
    "description": f"Flat key-value pairs, at most {MAX_METADATA_KEYS}; strings without NUL",
    "maxProperties": MAX_METADATA_KEYS,
    "propertyNames": {"minLength": 1, "maxLength": 100, "pattern": NO_NUL},
    "additionalProperties": {
        "anyOf": [
            {"type": "string", "maxLength": 1000, "pattern": NO_NUL},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
        ]
    },
}
Markup = Annotated[Decimal, _MARKUP.validator, _MARKUP.serializer, _MARKUP.schema]
AdjustmentAmount = Annotated[Decimal, _ADJUSTMENT.validator, _ADJUSTMENT.serializer, _ADJUSTMENT.schema]
Cost = Annotated[Decimal, _COST.validator, _COST.serializer, _COST.schema]
PaymentAmount = Annotated[Decimal, _PAYMENT.validator, _PAYMENT.serializer, _PAYMENT.schema]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS), BeforeValidator(_json_integer)]
Flag = Annotated[bool, Field(strict=True)]
IsoDate = Annotated[date, BeforeValidator(_iso_text)]
AwareDateTime = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_aware)]


class CamelModel(BaseModel):
    # defer_build: a function builds validators only for the models it uses, on first use (cold starts).
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, defer_build=True
    )


class RequestModel(CamelModel):
    # A field a client may not set (owner, id, balance, timestamp) is refused, never applied.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", defer_build=True)


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
    # Omit a field to keep it; null is refused (and undocumented) except for description, where it clears it.
    name: Name | SkipJsonSchema[None] = None
    description: Description | None = None
    markup: Markup | SkipJsonSchema[None] = None
    is_active: Flag | SkipJsonSchema[None] = None

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
    expires_at: AwareDateTime | None = None


class ApiKeyCreated(ApiKeyOut):
    key: str  # the only time the full key is ever shown


class ApiKeyList(CamelModel):
    api_keys: list[ApiKeyOut]


class ValidateApiKeyIn(RequestModel):
    api_key: Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]


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
    amount: AdjustmentAmount
    reason: Reason
    # The seed's clients send a positive amount with an operation; others send a signed amount.
    operation: Literal["increment", "decrement"] | None = None
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)] | None = None

    def signed_amount(self) -> Decimal:
        if self.operation == "decrement":
            return -abs(self.amount) if self.amount > 0 else self.amount
        return self.amount


class TransactionCreate(RequestModel):
    model: ModelName
    input_tokens: Tokens
    output_tokens: Tokens
    total_tokens: Annotated[int, Field(ge=0, le=2 * MAX_TOKENS), BeforeValidator(_json_integer)] | None = None
    cost: Cost | None = None
    status: TransactionStatus = "success"
    metadata: (
        Annotated[
            dict[MetadataKey, MetadataValue], Field(max_length=MAX_METADATA_KEYS), WithJsonSchema(METADATA_SCHEMA)
        ]
        | None
    ) = None


class TransactionRecorded(TransactionOut):
    balance: Decimal  # what remains after this call


class TransactionPage(CamelModel):
    transactions: list[TransactionOut]
    next_cursor: str | None


# --- payments ----------------------------------------------------------------------------------------


class PaymentLinkIn(RequestModel):
    amount: PaymentAmount
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
