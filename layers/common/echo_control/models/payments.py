"""Payment links, payment history and webhook acknowledgements."""

from datetime import datetime

from pydantic import Field

from echo_control.models.base import (
    CamelModel,
    Description,
    Id,
    PaymentAmount,
    PaymentStatus,
    RequestModel,
)


class PaymentLinkIn(RequestModel):
    amount: PaymentAmount  # dollars (the payment history answers cents)
    echo_app_id: Id | None = None
    description: Description | None = None  # seed compatibility: accepted, not stored


class SeedPaymentLink(CamelModel):
    """The link as the seed's clients read it (`paymentLink`): amount in cents, as the seed answered it."""

    id: str
    url: str
    amount: int
    currency: str


class PaymentLinkOut(CamelModel):
    url: str
    payment_id: str
    session_id: str
    payment_link: SeedPaymentLink  # seed compatibility
    payment: "PaymentOut"  # seed compatibility: the pending payment


class PaymentOut(CamelModel):
    id: str
    amount: int = Field(description="cents, as in the seed (the link request takes dollars)")
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


PaymentLinkOut.model_rebuild()
