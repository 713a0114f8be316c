"""Webhooks to developers: endpoints, their deliveries, and the low-balance alert."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal, get_args

from pydantic import Field, StringConstraints

from echo_control.models.base import CamelModel, RequestModel, SpendLimit

EventType = Literal[
    "payment.succeeded",
    "payment.refunded",
    "balance.low",
    "key.limit_reached",
    "customer.created",
    "payout.paid",
    "payout.failed",
    "dispute.created",
    "auto_top_up.failed",
]
DeliveryStatus = Literal["pending", "succeeded", "failed"]
MAX_WEBHOOK_URL_LENGTH = 2048
# No spaces or control characters anywhere; the scheme and host are checked by the layer (https in the cloud).
WEBHOOK_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\u0000-\u0020\u007f]+$"
WebhookUrl = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_WEBHOOK_URL_LENGTH, pattern=WEBHOOK_URL_PATTERN)
]


class WebhookCreate(RequestModel):
    url: WebhookUrl
    events: list[EventType] = Field(
        min_length=1, max_length=len(get_args(EventType)), description="Event types to receive (no repeats)"
    )


class WebhookOut(CamelModel):
    id: str
    url: str
    events: list[EventType]
    created_at: datetime
    # An endpoint whose every delivery failed for 5 days is disabled: nothing is sent to it until a resend succeeds.
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    failing_since: datetime | None = None


class WebhookCreated(WebhookOut):
    secret: str = Field(description="whsec_…: verifies the webhook-signature header; shown only in this answer")


class WebhookList(CamelModel):
    webhooks: list[WebhookOut]


class DeliveryOut(CamelModel):
    id: str
    event_id: str = Field(description="The webhook-id header of every attempt")
    event_type: EventType
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    next_attempt_at: datetime | None
    created_at: datetime


class DeliveryList(CamelModel):
    deliveries: list[DeliveryOut]


class BalanceAlertsIn(RequestModel):
    low_balance_threshold: SpendLimit | None = Field(
        description="USD: balance.low is sent once when spendable goes below it, again only after it rose above; "
        "null turns it off"
    )


class BalanceAlertsOut(CamelModel):
    low_balance_threshold: Decimal | None
    armed: bool = Field(description="false: balance.low was sent and waits for spendable to rise above the threshold")
