"""Payment links, payment history and webhook acknowledgements."""

from datetime import datetime

from echo_control.models.base import (
    CamelModel,
    Id,
    PaymentAmount,
    PaymentStatus,
    RequestModel,
)


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
