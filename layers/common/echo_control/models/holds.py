"""Holds (reserve, then settle), key spend limits and the balance statement."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from echo_control.models.base import (
    CamelModel,
    Cost,
    ModelName,
    Name,
    RequestModel,
    SpendLimit,
    Tokens,
    _json_integer,
)
from echo_control.models.ledger import ProviderName, TransactionRecorded

HoldStatus = Literal["active", "settled", "released", "expired"]
LimitPeriod = Literal["day", "month", "total"]
MIN_HOLD_TTL, MAX_HOLD_TTL, DEFAULT_HOLD_TTL = 10, 3600, 600


class HoldCreate(RequestModel):
    """Either an amount, or a model with the most tokens the call may use (priced as a call would be)."""

    amount: Cost | None = None
    model: ModelName | None = None
    provider: ProviderName | None = None
    max_input_tokens: Tokens | None = None
    max_output_tokens: Tokens | None = None
    ttl_seconds: Annotated[int, Field(ge=MIN_HOLD_TTL, le=MAX_HOLD_TTL), BeforeValidator(_json_integer)] = (
        DEFAULT_HOLD_TTL
    )

    @model_validator(mode="after")
    def _amount_or_model(self) -> "HoldCreate":
        by_model = self.model is not None or self.max_input_tokens is not None or self.max_output_tokens is not None
        if (self.amount is None) == (not by_model):
            raise ValueError("give either amount, or model with maxInputTokens and maxOutputTokens")
        if by_model and (self.model is None or self.max_input_tokens is None or self.max_output_tokens is None):
            raise ValueError("a hold by model needs model, maxInputTokens and maxOutputTokens")
        if self.amount is not None and self.amount <= 0:
            raise ValueError("amount must be more than zero")
        return self


class HoldOut(CamelModel):
    id: str
    amount: Decimal
    status: HoldStatus
    expires_at: datetime
    echo_app_id: str
    api_key_id: str
    created_at: datetime
    closed_at: datetime | None = None


class HoldCreated(HoldOut):
    available: Decimal  # what the user may still spend or hold after this one


class HoldReleased(CamelModel):
    id: str
    status: HoldStatus


class HoldSettled(TransactionRecorded):
    overrun: bool  # the cost passed the hold and what was available: only what could be taken was
    hold_id: str


class ApiKeyUpdate(RequestModel):
    """PUT /api/api-keys/{id}: fields left out stay as they are; spendLimit null removes the limit; a limit
    without a period (given or kept) is monthly."""

    name: Name | None = None
    spend_limit: SpendLimit | None = None
    limit_period: LimitPeriod | None = None


class LedgerEntryOut(CamelModel):
    id: str
    kind: Literal[
        "payment_credit",
        "refund",
        "admin_adjustment",
        "llm_debit",
        "grant_credit",  # a credit code redeemed
        "grant_expired",  # what was left of a grant when it expired
        "dispute",  # a payment disputed: its credits taken back, the part already spent owed
        "dispute_won",  # the dispute closed in our favour: all of it back
    ]
    amount: Decimal
    balance_after: Decimal
    reason: str | None = None
    reference_id: str | None = None
    created_at: datetime


class LedgerPage(CamelModel):
    entries: list[LedgerEntryOut]
    next_cursor: str | None


__all__ = [
    "DEFAULT_HOLD_TTL",
    "MAX_HOLD_TTL",
    "MIN_HOLD_TTL",
    "ApiKeyUpdate",
    "HoldCreate",
    "HoldCreated",
    "HoldOut",
    "HoldReleased",
    "HoldSettled",
    "HoldStatus",
    "LedgerEntryOut",
    "LedgerPage",
    "LimitPeriod",
]
