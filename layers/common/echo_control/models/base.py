"""The contract's building blocks: limits, exact decimals, text rules, and the base models every body uses."""

import re
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
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
)
from pydantic.alias_generators import to_camel

# Bounds the API promises (and documents in OpenAPI).
MAX_NAME_LENGTH = 100
MAX_DESCRIPTION_LENGTH = 1000
MAX_REASON_LENGTH = 500
MAX_TOKENS = 10_000_000
MAX_COST = Decimal("9999.999999")  # NUMERIC(10, 6)
MAX_ADJUSTMENT = Decimal("1000000")
MIN_PAYMENT, MAX_PAYMENT = Decimal(1), Decimal(10_000)
MAX_PAYOUT = Decimal(1_000_000)
MAX_METADATA_KEYS = 50
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
MODELS_PAGE_SIZE, MAX_MODELS_PAGE_SIZE = 100, 500  # the price list, in pages (GET /api/models, /models)
MAX_PER_MILLION = Decimal(10_000)  # USD per million tokens in an app's own prices
MAX_PRICED_MODELS = 500  # entries in an app's allowed models, and in its overrides
MAX_PRICED_MODEL_LENGTH = 200

TransactionStatus = Literal["success", "error", "timeout"]
PaymentStatus = Literal["pending", "completed", "failed", "refunded", "expired", "disputed"]
PayoutStatus = Literal["pending", "paid", "failed", "reversed"]


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
SPEND_LIMIT_PATTERN = r"^(?:1000000(?:\.0{1,6})?|[0-9]{1,6}(?:\.[0-9]{1,6})?)$"
PER_MILLION_PATTERN = r"^(?:10000(?:\.0{1,6})?|[0-9]{1,4}(?:\.[0-9]{1,6})?)$"
# A model name in an app's prices: what a call's model may be, with spaces around it that are trimmed.
PRICED_MODEL_PATTERN = f"^[{_SPACE}\t\n\r]*[A-Za-z0-9._:/@+-]+[{_SPACE}\t\n\r]*$"
PAYOUT_PATTERN = r"^(?:1000000(?:\.0{1,2})?|[0-9]{1,6}(?:\.[0-9]{1,2})?)$"
_MODEL_NAME_RULE = "must be a model name: letters, digits and . _ : / @ + - (such as gpt-4o-mini)"
# What a text pattern asks for, in words: API errors and form messages say this, never the expression itself.
PATTERN_RULES = {
    SINGLE_LINE_PATTERN: "must have a visible character and no control characters",
    MULTI_LINE_PATTERN: "must not contain control characters other than tabs and line breaks",
    EMAIL_PATTERN: "must be an email address such as you@example.com",
    MODEL_NAME_PATTERN: _MODEL_NAME_RULE,
    PRICED_MODEL_PATTERN: _MODEL_NAME_RULE,
    NO_NUL: "must not contain NUL characters",
}


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
    return _in_years(value)


# A date or instant must be a day of these years: a day or a zone's hours past them cannot be represented (Python
# dates end with 9999, and Unix time starts in 1970), so a bound like to=9999-12-31 would overflow into a 500.
FIRST_YEAR, LAST_YEAR = 1970, 9998
YEARS_PATTERN = "^(?:19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"  # the same years, in OpenAPI


def _in_years(value: date) -> Any:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"must be a day of the years {FIRST_YEAR} to {LAST_YEAR}")
    return value


def _trim(value: str) -> str:
    return value.strip(SPACES + "\t\r\n")


class AmountError(ValueError):
    """An amount outside its rule; `for_people` says the rule as a form shows it ("from $1 to $10,000, …")."""

    def __init__(self, message: str, for_people: str) -> None:
        super().__init__(message)
        self.for_people = for_people


class ExactDecimal:
    """An exact amount: a JSON string whose pattern is the whole rule (range and decimal places), or, as the seed's
    clients send money, a JSON number within [minimum, maximum], read from the JSON text (the resolver parses
    numbers as Decimal, never float) and rounded half-up to `places`."""

    def __init__(
        self,
        pattern: str,
        description: str,
        example: str,
        *,
        minimum: Decimal,
        maximum: Decimal,
        places: int,
        for_people: str,
    ) -> None:
        self.regex = re.compile(pattern)
        self.description, self.example, self.for_people = description, example, for_people
        self.minimum, self.maximum, self.quantum = minimum, maximum, Decimal(1).scaleb(-places)
        self.validator = PlainValidator(self.parse, json_schema_input_type=str)
        self.serializer = PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json")
        number = {
            "type": "number",
            "minimum": float(minimum),
            "maximum": float(maximum),
            "description": f"seed compatibility: a JSON number, rounded half-up to {places} decimal places",
        }
        self.schema = WithJsonSchema(
            {
                "anyOf": [{"type": "string", "pattern": pattern, "examples": [example]}, number],
                "description": description,
            }
        )

    def parse(self, value: Any) -> Decimal:
        if isinstance(value, Decimal | int) and not isinstance(value, bool):
            amount = self._from_number(Decimal(value))
        elif not isinstance(value, str) or not self.regex.match(value):
            raise AmountError(f"must be a decimal string, {self.description} (e.g. {self.example!r})", self.for_people)
        else:
            amount = Decimal(value)
        return amount if amount else abs(amount)  # -0 is 0: "-0.000000" is never written or answered

    def _from_number(self, number: Decimal) -> Decimal:
        if not number.is_finite() or not self.minimum <= number <= self.maximum:
            raise AmountError(f"must be {self.description} (e.g. {self.example!r})", self.for_people)
        return number.quantize(self.quantum, rounding=ROUND_HALF_UP)


_MARKUP = ExactDecimal(
    MARKUP_PATTERN,
    "from 1 to 100, at most 4 decimal places",
    "1.25",
    minimum=Decimal(1),
    maximum=Decimal(100),
    places=4,
    for_people="from 1 to 100 with at most 4 decimal places, such as 1.25",
)
_ADJUSTMENT = ExactDecimal(
    ADJUSTMENT_PATTERN,
    "USD, signed, at most 1,000,000 and 6 decimal places",
    "25.00",
    minimum=-MAX_ADJUSTMENT,
    maximum=MAX_ADJUSTMENT,
    places=6,
    for_people="from -$1,000,000 to $1,000,000 with at most 6 decimal places, such as 25.00",
)
_COST = ExactDecimal(
    COST_PATTERN,
    "USD from 0 to 9999.999999",
    "0.002150",
    minimum=Decimal(0),
    maximum=MAX_COST,
    places=6,
    for_people="from $0 to $9,999.999999, such as 0.002150",
)
_SPEND_LIMIT = ExactDecimal(
    SPEND_LIMIT_PATTERN,
    "USD from 0 to 1,000,000, at most 6 decimal places",
    "50.00",
    minimum=Decimal(0),
    maximum=MAX_ADJUSTMENT,
    places=6,
    for_people="from $0 to $1,000,000, such as 50.00",
)
_PAYMENT = ExactDecimal(
    PAYMENT_PATTERN,
    'USD as dollars with at most 2 decimal places ("20.00", not cents), from 1 to 10,000 (a deployment may cap it '
    "lower: ECHO_MAX_PAYMENT_USD)",
    "20.00",
    minimum=MIN_PAYMENT,
    maximum=MAX_PAYMENT,
    places=2,
    for_people="from $1 to $10,000 with at most cents, such as 20.00",
)
_PER_MILLION = ExactDecimal(
    PER_MILLION_PATTERN,
    "USD per million tokens from 0 to 10,000, at most 6 decimal places",
    "2.50",
    minimum=Decimal(0),
    maximum=MAX_PER_MILLION,
    places=6,
    for_people="USD per million tokens from 0 to 10,000 such as 2.50",
)

_PAYOUT = ExactDecimal(
    PAYOUT_PATTERN,
    'USD as dollars with at most 2 decimal places ("15.00", not cents), at most 1,000,000 and at least '
    "ECHO_MIN_PAYOUT_USD (10 by default)",
    "25.00",
    minimum=Decimal(0),
    maximum=MAX_PAYOUT,
    places=2,
    for_people="from $0 to $1,000,000 with at most cents, such as 25.00",
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
PricedModelName = Annotated[
    str, StringConstraints(max_length=MAX_PRICED_MODEL_LENGTH, pattern=PRICED_MODEL_PATTERN), AfterValidator(_trim)
]
Email = Annotated[str, StringConstraints(max_length=320, pattern=EMAIL_PATTERN), AfterValidator(str.lower)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=100)]
# Metadata is not money: a JSON number with a fraction (a Decimal from the JSON text) is kept as a float.
MetadataNumber = Annotated[StrictFloat, BeforeValidator(lambda v: float(v) if isinstance(v, Decimal) else v)]
MetadataValue = Annotated[str, StringConstraints(max_length=1000)] | StrictInt | MetadataNumber | StrictBool | None
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
SpendLimit = Annotated[Decimal, _SPEND_LIMIT.validator, _SPEND_LIMIT.serializer, _SPEND_LIMIT.schema]
PaymentAmount = Annotated[Decimal, _PAYMENT.validator, _PAYMENT.serializer, _PAYMENT.schema]
PerMillion = Annotated[Decimal, _PER_MILLION.validator, _PER_MILLION.serializer, _PER_MILLION.schema]
PayoutAmount = Annotated[Decimal, _PAYOUT.validator, _PAYOUT.serializer, _PAYOUT.schema]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS), BeforeValidator(_json_integer)]
Flag = Annotated[bool, Field(strict=True)]
IsoDate = Annotated[date, BeforeValidator(_iso_text), AfterValidator(_in_years)]


def _date_or_time(value: Any) -> date | datetime:
    # A plain date ("2027-01-01") means that whole UTC day; anything longer must be an RFC 3339 instant with a zone.
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, date):
        return _in_years(value)
    if not isinstance(value, str):
        raise ValueError("must be a date (2027-01-01) or an RFC 3339 date-time (2027-01-01T00:00:00Z)")
    parsed: date | None = None
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            parsed = date.fromisoformat(value)
        elif re.match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T", value):
            parsed = datetime.fromisoformat(value)
    except ValueError:
        pass
    if isinstance(parsed, datetime):
        return _aware(parsed)
    if parsed is not None:
        return _in_years(parsed)
    raise ValueError("must be a date (2027-01-01) or an RFC 3339 date-time with a zone (2027-01-01T00:00:00Z)")


# One way to bound a range in a query, on every route that takes from/to: a date is the whole UTC day, a timestamp
# is that instant (echo_control.analytics turns either into days or instants).
DateOrTime = Annotated[
    date | datetime,
    PlainValidator(_date_or_time, json_schema_input_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date", "pattern": YEARS_PATTERN},
                {"type": "string", "format": "date-time", "pattern": YEARS_PATTERN},
            ],
            "description": f"a date (the whole UTC day) or an RFC 3339 date-time with a time zone, in {FIRST_YEAR}-"
            f"{LAST_YEAR}",
        }
    ),
]
AwareDateTime = Annotated[
    datetime,
    BeforeValidator(_iso_text),
    AfterValidator(_aware),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": YEARS_PATTERN}),
]


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
    message: str  # the error's message again, as text, for clients that read errors as strings
