"""Developers' webhook endpoints (add, list, remove), their deliveries (list, resend one) and the low-balance
alert. Another user's endpoint or delivery is 404, exactly like a missing one."""

import uuid
from typing import Any
from uuid import UUID

from echo_control import db, webhook_delivery
from echo_control.errors import Conflict, NotFound
from echo_control.identity import as_uuid
from echo_control.models import (
    BalanceAlertsIn,
    BalanceAlertsOut,
    DeliveryList,
    DeliveryOut,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
)

MAX_ENDPOINTS = 20
DELIVERIES_SHOWN = 100


def _out(row: dict[str, Any]) -> WebhookOut:
    return WebhookOut(
        id=str(row["id"]),
        url=row["url"],
        events=row["events"],
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
        disabled_reason=row["disabled_reason"],
        failing_since=row["failing_since"],
    )


def create_endpoint(user_id: UUID, body: WebhookCreate) -> WebhookCreated:
    """A new endpoint and its signing secret, which this answer alone shows."""
    url = webhook_delivery.check_url(body.url)
    if len(db.endpoints_for_user(user_id)) >= MAX_ENDPOINTS:
        raise Conflict(f"At most {MAX_ENDPOINTS} webhook endpoints", code="too_many_webhooks")
    endpoint_id = uuid.uuid4()
    secret = webhook_delivery.new_secret()
    events: list[str] = list(dict.fromkeys(body.events))
    row = db.insert_endpoint(endpoint_id, user_id, url, events, webhook_delivery.seal(endpoint_id, secret))
    return WebhookCreated(**_out(row).model_dump(), secret=secret)


def list_endpoints(user_id: UUID) -> WebhookList:
    return WebhookList(webhooks=[_out(row) for row in db.endpoints_for_user(user_id)])


def disabled_endpoints(user_id: UUID) -> list[WebhookOut]:
    """The endpoints turned off after 5 days of failures, which the dashboard tells their owner about."""
    return [endpoint for endpoint in list_endpoints(user_id).webhooks if endpoint.disabled_at is not None]


def _own_endpoint(user_id: UUID, endpoint_id: str) -> dict[str, Any]:
    parsed = as_uuid(endpoint_id)
    row = db.endpoint_for_owner(parsed, user_id) if parsed else None
    if row is None:
        raise NotFound("Webhook endpoint not found")
    return row


def delete_endpoint(user_id: UUID, endpoint_id: str) -> WebhookOut:
    parsed = as_uuid(endpoint_id)
    row = db.delete_endpoint(parsed, user_id) if parsed else None
    if row is None:
        raise NotFound("Webhook endpoint not found")
    return _out(row)


def _delivery_out(row: dict[str, Any]) -> DeliveryOut:
    return DeliveryOut(
        id=str(row["id"]),
        event_id=str(row["event_id"]),
        event_type=row["event_type"],
        status=row["status"],
        attempts=row["attempts"],
        last_status_code=row["last_status_code"],
        next_attempt_at=row["next_attempt_at"] if row["status"] == "pending" else None,
        created_at=row["created_at"],
    )


def deliveries(user_id: UUID, endpoint_id: str) -> DeliveryList:
    """The endpoint's latest deliveries, newest first."""
    endpoint = _own_endpoint(user_id, endpoint_id)
    rows = db.deliveries_for_endpoint(endpoint["id"], DELIVERIES_SHOWN)
    return DeliveryList(deliveries=[_delivery_out(row) for row in rows])


def deliveries_with_attempts(user_id: UUID, endpoint_id: str) -> tuple[WebhookOut, list[tuple[DeliveryOut, list]]]:
    """For the dashboard: the endpoint, and each delivery with its attempts (time, status code, error, answer)."""
    endpoint = _own_endpoint(user_id, endpoint_id)
    rows = db.deliveries_for_endpoint(endpoint["id"], DELIVERIES_SHOWN)
    attempts: dict[UUID, list[dict[str, Any]]] = {}
    for attempt in db.attempts_for_deliveries([row["id"] for row in rows]):
        attempts.setdefault(attempt["delivery_id"], []).append(attempt)
    return _out(endpoint), [(_delivery_out(row), attempts.get(row["id"], [])) for row in rows]


def resend(user_id: UUID, endpoint_id: str, delivery_id: str) -> DeliveryOut:
    """Sends the delivery again now (same webhook-id), whatever its status; its attempts so far stay."""
    endpoint = _own_endpoint(user_id, endpoint_id)
    parsed = as_uuid(delivery_id)
    row = db.resend_delivery(parsed, endpoint["id"], user_id) if parsed else None
    if row is None:
        raise NotFound("Delivery not found")
    return _delivery_out(row)


def set_balance_alerts(user_id: UUID, body: BalanceAlertsIn) -> BalanceAlertsOut:
    """Sets (armed) or removes the low-balance threshold, under the balance row's lock as every balance change."""
    with db.transaction() as conn:
        db.lock_funds(conn, user_id)
        db.set_low_balance_threshold(conn, user_id, body.low_balance_threshold)
    return balance_alerts(user_id)


def balance_alerts(user_id: UUID) -> BalanceAlertsOut:
    row = db.low_balance_threshold(user_id)
    if row is None:
        return BalanceAlertsOut(low_balance_threshold=None, armed=False)
    return BalanceAlertsOut(low_balance_threshold=row["low_balance_threshold"], armed=row["low_balance_armed"])
