"""Balances, metered LLM transactions and their history."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StringConstraints, WithJsonSchema, model_validator

from echo_control.models.base import (
    MAX_METADATA_KEYS,
    MAX_TOKENS,
    METADATA_SCHEMA,
    NO_NUL,
    AdjustmentAmount,
    AwareDateTime,
    CamelModel,
    Cost,
    Flag,
    Id,
    MetadataKey,
    MetadataValue,
    ModelName,
    PaymentAmount,
    Reason,
    RequestModel,
    Tokens,
    TransactionStatus,
    _json_integer,
)

ProviderName = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=r"^[a-z0-9][a-z0-9._-]*$")]

# Within the body limit (64 KB); none of it is stored.
SeedText = Annotated[str, StringConstraints(max_length=32 * 1024, pattern=NO_NUL)]


class TransactionOut(CamelModel):
    id: str
    model: str
    provider: str | None = None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    provider_cost: Decimal  # the price of the tokens
    markup_amount: Decimal  # what the caller was charged on top: providerCost × (markup − 1); 0 on one's own app
    cost: Decimal  # what the user paid: providerCost + markupAmount
    # the owner's share that was credited: the markup on the part paid from cash (payments, cash adjustments)
    earned_amount: Decimal = Decimal("0.000000")
    status: TransactionStatus
    user_id: str
    echo_app_id: str | None
    metadata: dict[str, Any] | None = None
    created_at: datetime


class BalanceOut(CamelModel):
    user_id: str
    balance: Decimal
    total_paid: Decimal
    total_spent: Decimal
    # Seed compatibility: everything ever credited net of refunds and debits by admins, so that, as in the seed,
    # balance = totalCredits - totalSpent.
    total_credits: Decimal
    held: Decimal  # reserved by active holds
    available: Decimal  # balance - held: what calls and new holds may take (below zero: what is owed)
    spendable: Decimal  # max(available, 0): what can be spent now
    debt: Decimal  # what recorded calls cost beyond the user's credits; the next credit pays it first
    lots: list["LotOut"] = Field(default_factory=list)  # the credits with something left, in the order calls take them
    currency: Literal["usd"] = "usd"


class LotOut(CamelModel):
    """A credit and what is left of it: calls take grants (soonest expiry first), then non-cash adjustments, then
    cash (oldest first)."""

    id: str
    source: Literal["payment", "grant", "adjustment"]
    cash: bool  # money received (a payment or a cash adjustment): only cash earns app owners their markup
    amount: Decimal
    remaining: Decimal
    expires_at: datetime | None = None


class AppMoney(CamelModel):
    """One app's part of a user's money: what they paid for it (payments made from it, net of refunds) and what
    their calls to it cost. The balance itself is the user's, across apps."""

    total_paid: Decimal
    total_spent: Decimal


class AppBalanceOut(BalanceOut):
    """The balance with the app it was asked for (?echoAppId=, or an API key's own app), as the seed's SDK reads it."""

    echo_app_id: str | None = None
    echo_app_name: str | None = None
    app: AppMoney | None = None


class AdjustmentOut(CamelModel):
    """A credit or debit an admin applied by hand (the demo's welcome credit is one), with its reason."""

    amount: Decimal
    reason: str | None
    created_at: datetime


class BalanceAdjust(RequestModel):
    user_id: Id
    amount: AdjustmentAmount
    reason: Reason
    cash: Flag = False  # money received outside Stripe (it earns app owners their markup when spent)
    # The seed's clients send a positive amount with an operation; others send a signed amount.
    operation: Literal["increment", "decrement"] | None = None
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)] | None = None

    def signed_amount(self) -> Decimal:
        if self.operation == "decrement":
            return -abs(self.amount) if self.amount > 0 else self.amount
        return self.amount


class TransactionCreate(RequestModel):
    model: ModelName
    provider: ProviderName | None = None
    # Every input token, cached ones included; cacheReadTokens and cacheWriteTokens say how many of them were cache
    # reads and writes. reasoningTokens is informational: they are already inside outputTokens.
    input_tokens: Tokens
    output_tokens: Tokens
    cache_read_tokens: Tokens = 0
    cache_write_tokens: Tokens = 0
    reasoning_tokens: Tokens = 0
    total_tokens: Annotated[int, Field(ge=0, le=2 * MAX_TOKENS), BeforeValidator(_json_integer)] | None = None
    cost: Cost | None = None  # the provider's cost, when the caller knows it; the app's markup applies on top
    status: TransactionStatus = "success"
    # true: refuse (402, nothing recorded) when what is available or the key's limit does not cover the call;
    # by default a call that happened is recorded and what is not covered becomes debt (`shortfall`)
    require_funds: Flag = False
    # Seed compatibility: the seed's proxy sends the prompt, the answer and an error text with each call. They are
    # accepted and not stored (what people ask an app is its owner's data, not the meter's).
    prompt: SeedText | None = None
    response: SeedText | None = None
    error_message: SeedText | None = None
    metadata: (
        Annotated[
            dict[MetadataKey, MetadataValue], Field(max_length=MAX_METADATA_KEYS), WithJsonSchema(METADATA_SCHEMA)
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _cached_within_input(self) -> "TransactionCreate":
        if self.cache_read_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError("cacheReadTokens + cacheWriteTokens are part of inputTokens and cannot exceed it")
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError("reasoningTokens are part of outputTokens and cannot exceed it")
        return self


class TransactionRecorded(TransactionOut):
    balance: Decimal  # what remains after this call (below zero: a debt)
    available: Decimal  # the balance less active holds
    shortfall: Decimal  # the part neither what was available nor the key's limit covered ("0.000000" when covered)
    transaction: TransactionOut  # seed compatibility: the same transaction under the seed's wrapper


class TransactionPage(CamelModel):
    transactions: list[TransactionOut]
    next_cursor: str | None


class ModelPrice(CamelModel):
    """A priced model, USD per million tokens; null where the provider has no such price."""

    provider: str
    model: str
    name: str
    input_per_million: Decimal | None
    output_per_million: Decimal | None
    cache_read_per_million: Decimal | None
    cache_write_per_million: Decimal | None


class PriceSource(CamelModel):
    package: str
    version: str


class ModelPriceList(CamelModel):
    """One page of the price list (2,000+ models in all): `nextPage` is null on the last."""

    models: list[ModelPrice]
    source: PriceSource
    page: int
    limit: int
    total: int = Field(description="models matching the query, on every page")
    next_page: int | None


class CreditCodeCreate(RequestModel):
    """POST /api/credit-codes (admin): a promotional grant that up to maxUses users may redeem, once each."""

    amount: PaymentAmount  # USD granted on each redemption
    max_uses: Annotated[int, Field(ge=1, le=1_000_000), BeforeValidator(_json_integer)]
    expires_at: AwareDateTime | None = None  # the code can no longer be redeemed from then on
    credit_days: Annotated[int, Field(ge=1, le=3650), BeforeValidator(_json_integer)] | None = None  # grant's life


class CreditCodeOut(CamelModel):
    id: str
    code: str
    amount: Decimal
    max_uses: int
    uses: int
    expires_at: datetime | None
    credit_days: int | None
    created_at: datetime


class CreditCodeList(CamelModel):
    codes: list[CreditCodeOut]


class CreditCodeRedeem(RequestModel):
    code: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL)]


class CreditCodeRedeemed(CamelModel):
    amount: Decimal
    expires_at: datetime | None  # when the granted credit stops counting (creditDays after redemption), or never
    balance: BalanceOut
