"""The app owners' earnings (the markup on their apps' calls) and payouts to their Stripe Connect accounts."""

from datetime import date, datetime
from decimal import Decimal

from pydantic import Field

from echo_control.models.base import CamelModel, PayoutAmount, PayoutStatus, RequestModel


class AppEarnings(CamelModel):
    echo_app_id: str
    name: str
    lifetime: Decimal
    last_30_days: Decimal  # today (UTC) and the 29 days before


class EarningsOut(CamelModel):
    """clearing + available + pending + paidOut + reversed = lifetime, to the micro-dollar."""

    clearing: Decimal = Field(description="earned, not cleared yet (ECHO_EARNINGS_CLEARING_DAYS after the call)")
    available: Decimal = Field(
        description="earned, cleared and not yet paid out: what a payout may take (below zero after a reversal)"
    )
    pending: Decimal = Field(description="in payouts whose transfer Stripe has not confirmed yet")
    paid_out: Decimal = Field(description="transferred to the connected account (net of reversals)")
    lifetime: Decimal = Field(description="every markup ever earned")
    reversed: Decimal = Field(description="earnings taken back because the credits that paid them were refunded")
    payouts_enabled: bool  # Stripe has onboarded the owner's connected account for payouts
    minimum_payout: Decimal  # ECHO_MIN_PAYOUT_USD
    apps: list[AppEarnings]


class DayEarnings(CamelModel):
    day: date
    amount: Decimal
    calls: int


class ModelEarnings(CamelModel):
    model: str
    amount: Decimal
    calls: int


class AppEarningsOut(CamelModel):
    echo_app_id: str
    lifetime: Decimal
    since: date
    until: date
    total: Decimal  # within [since, until]
    by_day: list[DayEarnings]
    by_model: list[ModelEarnings]


class PayoutAccountOut(CamelModel):
    url: str  # Stripe's onboarding page for the connected account (locally, the mock's)
    account_id: str
    payouts_enabled: bool


class PayoutCreate(RequestModel):
    amount: PayoutAmount


class PayoutOut(CamelModel):
    id: str
    amount: Decimal
    status: PayoutStatus
    amount_returned: Decimal  # what a failed or reversed transfer gave back to available
    stripe_transfer_id: str | None
    failure_reason: str | None = None
    created_at: datetime
    updated_at: datetime


class PayoutList(CamelModel):
    payouts: list[PayoutOut]
