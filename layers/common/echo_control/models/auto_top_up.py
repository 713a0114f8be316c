"""Automatic top-up: the card saved for off-session charges, the settings, and the charges made."""

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from echo_control.models.base import CamelModel, Flag, PaymentAmount, RequestModel, SpendLimit

AutoTopUpChargeStatus = Literal["requested", "processing", "succeeded", "failed"]


class SetupLinkOut(CamelModel):
    url: str = Field(description="Stripe Checkout in setup mode (locally without a Stripe key, the mock's page)")
    session_id: str


class AutoTopUpIn(RequestModel):
    """Omit a field to keep what is stored (null is refused); turning it on needs all three numbers and a card."""

    enabled: Flag
    threshold: SpendLimit | SkipJsonSchema[None] = Field(
        None, description="USD: a charge starts when what you can spend goes below it (0: when a call leaves debt)"
    )
    amount: PaymentAmount | SkipJsonSchema[None] = Field(
        None, description="USD charged each time, within what a payment link may buy (ECHO_MAX_PAYMENT_USD)"
    )
    monthly_limit: SpendLimit | SkipJsonSchema[None] = Field(
        None,
        description="USD: at most this much is charged in a UTC calendar month (succeeded and in flight); ≥ amount",
    )

    @field_validator("threshold", "amount", "monthly_limit", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be omitted but not null")
        return value


class SavedCard(CamelModel):
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    saved_at: datetime | None


class AutoTopUpCharge(CamelModel):
    id: str
    amount: Decimal
    status: AutoTopUpChargeStatus
    payment_id: str | None
    error_code: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime


class AutoTopUpOut(CamelModel):
    enabled: bool
    threshold: Decimal | None
    amount: Decimal | None
    monthly_limit: Decimal | None
    charged_this_month: Decimal = Field(description="USD credited by this UTC calendar month's charges")
    in_flight: AutoTopUpCharge | None = Field(description="the charge started and not yet settled (at most one)")
    last_error: str | None = Field(description="why auto top-up turned itself off (a decline, an authentication)")
    last_error_code: str | None = Field(description="card_declined (or Stripe's code for a refusal), requires_action")
    last_error_at: datetime | None
    card: SavedCard | None = Field(description="the card charges go to; null until one is saved (setup-link)")
    charges: list[AutoTopUpCharge] = Field(description="this UTC calendar month's charges, newest first")
