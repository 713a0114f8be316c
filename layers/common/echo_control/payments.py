"""Buying credits: Stripe Checkout links, signed webhooks applied exactly once, and payment history. The webhook
also takes the payout events (echo_control.payouts): one endpoint, verified against either of our secrets.

With no Stripe key configured, links open a local mock checkout that signs its webhook as Stripe does, so
the same verification and crediting code runs locally and in production."""

import hashlib
import hmac
import json
import secrets
import time
import urllib.request
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

from echo_control import apps, config, db, events, ledger
from echo_control.errors import BadRequest, NotFound, Unprocessable
from echo_control.identity import as_uuid
from echo_control.models import PaymentLinkIn, PaymentLinkOut, PaymentList, PaymentOut, SeedPaymentLink
from echo_control.observability import count, logger

CENTS = Decimal(100)
MOCK_SESSION_PREFIX = "cs_mock_"
CREDIT_EVENTS = {"checkout.session.completed", "checkout.session.async_payment_succeeded"}
FAILURE_EVENTS = {"checkout.session.async_payment_failed", "payment_intent.payment_failed"}
REFUND_EVENTS = {"charge.refunded"}
DISPUTE_OPENED, DISPUTE_CLOSED = "charge.dispute.created", "charge.dispute.closed"
EXPIRY_EVENTS = {"checkout.session.expired"}
HANDLED_EVENTS = CREDIT_EVENTS | FAILURE_EVENTS | REFUND_EVENTS | EXPIRY_EVENTS | {DISPUTE_OPENED, DISPUTE_CLOSED}
HISTORY_LIMIT = 100


def _to_out(row: dict[str, Any]) -> PaymentOut:
    return PaymentOut(
        id=str(row["id"]),
        amount=row["amount"],
        amount_refunded=row["amount_refunded"],
        currency=row["currency"],
        status=row["status"],
        stripe_payment_id=row["stripe_payment_id"],
        echo_app_id=str(row["echo_app_id"]) if row["echo_app_id"] else None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def list_payments(user_id: UUID) -> PaymentList:
    return PaymentList(payments=[_to_out(r) for r in db.payments_for_user(user_id, HISTORY_LIMIT)])


# --- payment links -----------------------------------------------------------------------------------


def stripe_client(secret_key: str) -> Any:
    import stripe  # only the payment functions pay for importing the SDK

    api_base = config.settings().stripe_api_base
    addresses: Any = {"api": api_base} if api_base else None
    return stripe.StripeClient(secret_key, base_addresses=addresses, max_network_retries=2)


def with_query(path: str, **params: str) -> str:
    """A same-site path with parameters added to its query (return paths may carry their own)."""
    parts = urlsplit(path)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in params] + list(params.items())
    return urlunsplit(("", "", parts.path, urlencode(query), ""))


def create_payment_link(
    user_id: UUID,
    body: PaymentLinkIn,
    *,
    base_url: str,
    return_path: str = "/balance",
    key_app_id: UUID | None = None,
) -> PaymentLinkOut:
    """A checkout for `body.amount`; the buyer comes back to `return_path` (a same-site path) on `base_url`.

    An API key (`key_app_id`, as the seed's SDK asks) buys for its own app: another app is 404."""
    credentials = config.stripe_credentials()  # a misconfigured deployment refuses before recording anything
    maximum = config.settings().max_payment_usd
    if body.amount > maximum:  # a deployment may sell less than the contract's ceiling at once
        raise Unprocessable(f"amount must be at most {maximum}", details={"field": "amount", "max": str(maximum)})
    app_id = key_app_id
    if body.echo_app_id is not None:
        app_id = as_uuid(body.echo_app_id)
        if app_id is None or (key_app_id is not None and app_id != key_app_id):
            raise NotFound("Echo app not found")
        apps.used_app(user_id, app_id)  # the buyer's own app, or one they are a customer of
    cents = int(body.amount * CENTS)
    payment = db.insert_payment(user_id, cents, app_id)
    if credentials.secret_key is None:  # only ever locally: in the cloud a missing key is a configuration error
        session_id = MOCK_SESSION_PREFIX + secrets.token_urlsafe(24)
        url = f"{base_url}/checkout/mock/{session_id}?" + urlencode({"return": return_path})
    else:
        metadata = {"paymentId": str(payment["id"]), "userId": str(user_id)}
        session = stripe_client(credentials.secret_key).v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "client_reference_id": str(user_id),
                "metadata": metadata,
                "payment_intent_data": {"metadata": metadata},
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": "usd",
                            "unit_amount": cents,
                            "product_data": {"name": f"Echo credits (${body.amount:.2f})"},
                        },
                    }
                ],
                "success_url": base_url + with_query(return_path, payment="success"),
                "cancel_url": base_url + with_query(return_path, payment="cancelled"),
            },
            options={"idempotency_key": f"payment-link-{payment['id']}"},
        )
        session_id, url = session.id, session.url
    db.set_payment_session(payment["id"], session_id)
    return PaymentLinkOut(
        url=url,
        payment_id=str(payment["id"]),
        session_id=session_id,
        payment_link=SeedPaymentLink(id=session_id, url=url, amount=cents, currency=payment["currency"]),
        payment=_to_out(payment),
    )


# --- webhooks ----------------------------------------------------------------------------------------


def sign_payload(payload: str, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header value, computed exactly as Stripe does (HMAC-SHA256 of "t.payload")."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


# Stripe's own tolerance for a signature's age; one timestamped further ahead than this is refused as well (the
# SDK checks only the past), so a captured signature cannot be post-dated to outlive the window.
SIGNATURE_TOLERANCE_SECONDS = 300


def verify_event(payload: str, signature: str | None) -> dict[str, Any]:
    """The event, if Stripe signed it for either of our endpoints: the platform's (payments, transfers) with the
    webhook secret, or the Connect one (events on connected accounts) with the Connect webhook secret."""
    import stripe

    if not signature:
        raise BadRequest("Missing Stripe-Signature header", code="invalid_signature")
    if _signed_at(signature) > time.time() + SIGNATURE_TOLERANCE_SECONDS:
        raise BadRequest("The Stripe signature is timestamped in the future", code="invalid_signature")
    credentials = config.stripe_credentials()
    for secret in (credentials.webhook_secret, credentials.connect_webhook_secret):
        if secret is None:
            continue
        try:
            stripe.WebhookSignature.verify_header(payload, signature, secret, SIGNATURE_TOLERANCE_SECONDS)
        except stripe.SignatureVerificationError:
            continue
        return _event_object(payload)
    if credentials.connect_webhook_secret is None:  # in the cloud only: locally the development secret stands in
        raise config.misconfigured("an event could not be verified and the Connect webhook secret is missing")
    raise BadRequest("Invalid Stripe signature", code="invalid_signature")


def _signed_at(signature: str) -> int:
    """The header's timestamp (t=…); 0 when it has none, which the signature check then refuses."""
    for part in signature.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            return int(value)
    return 0


def _event_object(payload: str) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise BadRequest("The payload is not a Stripe event", code="invalid_payload") from exc
    if not isinstance(event, dict):  # signed, yet `[]` or `"x"`: nothing Stripe sends
        raise BadRequest("The payload is not a Stripe event (a JSON object)", code="invalid_payload")
    return event


def handle_webhook(payload: str, signature: str | None) -> bool:
    """Verifies and applies one delivery; True when it changed something, False for repeats and others."""
    from echo_control import auto_top_up, payouts  # both build on this module

    event = verify_event(payload, signature)
    event_type = str(event.get("type", ""))
    event_id = event.get("id")
    if event_type not in HANDLED_EVENTS | payouts.EVENTS | auto_top_up.EVENTS:
        return False
    if not isinstance(event_id, str) or not event_id:
        raise BadRequest("The event has no id", code="invalid_payload")
    # A signed event is Stripe's, but its fields are still read defensively: an odd shape is ignored, never a 500.
    obj = mapping(mapping(event.get("data")).get("object"))
    saves_card = auto_top_up.is_card_event(event_type, obj)
    card = auto_top_up.card_of_event(event_type, obj) if saves_card else None  # asked of Stripe before locking
    with db.transaction() as conn:
        if not db.record_stripe_event(conn, event_id, event_type):
            return False  # delivered before: already applied
        if event_type in payouts.EVENTS:
            return payouts.apply_event(conn, event_type, obj, account=event.get("account"))
        if saves_card:
            return auto_top_up.save_card(conn, event_type, obj, card)
        payment = _find_payment(conn, obj)
        if payment is None:
            logger.warning("webhook for an unknown payment", extra={"event_id": event_id, "type": event_type})
            return False
        if (applied := auto_top_up.apply_payment_event(conn, event_type, payment, obj, event_id)) is not None:
            return applied  # an automatic top-up's charge: confirmed, or failed
        if event_type == auto_top_up.CHARGE_SUCCEEDED:
            return False  # a checkout's payment intent: its session's completion credits it
        if event_type in CREDIT_EVENTS:
            if event_type == "checkout.session.completed" and obj.get("payment_status") != "paid":
                _await_delayed_payment(conn, payment, obj.get("payment_intent"))
                return False  # delayed methods: wait for async_payment_succeeded
            complete(conn, payment, obj.get("payment_intent"), collected(payment, obj, event_id))
        elif event_type in FAILURE_EVENTS or event_type in EXPIRY_EVENTS:
            if payment["status"] == "pending":
                db.update_payment(
                    conn,
                    payment["id"],
                    status="failed" if event_type in FAILURE_EVENTS else "expired",
                    stripe_payment_id=None,
                    amount_refunded=payment["amount_refunded"],
                )
        elif event_type == DISPUTE_OPENED:
            return _dispute(conn, payment, cents(obj.get("amount")), event_id)
        elif event_type == DISPUTE_CLOSED:
            return _close_dispute(conn, payment, obj.get("status"), event_id)
        else:
            _refund(conn, payment, cents(obj.get("amount_refunded")), obj.get("payment_intent"))
    return True


def _dispute(conn: db.Conn, payment: dict[str, Any], disputed: int, event_id: str) -> bool:
    """A dispute acts as a refund of the disputed amount: the payment's unspent credits go, the earnings its spent
    ones paid are reversed, and the part already spent becomes the buyer's debt. Auto top-up stops charging the
    buyer's card."""
    from echo_control import auto_top_up

    if payment["status"] not in ("completed", "refunded") or payment["amount_disputed"]:
        logger.warning("dispute of a payment not credited, or disputed before", extra={"event_id": event_id})
        return False
    refundable = payment["amount"] - payment["amount_refunded"]
    amount = min(disputed, refundable) if disputed else refundable
    db.pause_auto_top_up(conn)  # money taken back never charges the card again
    unspent, debt = ledger.take_back(
        conn,
        payment,
        Decimal(amount) / CENTS,
        kind="dispute",
        key=f"dispute:{payment['id']}",
        spent_becomes_debt=True,
    )
    db.record_dispute(
        conn, payment["id"], status="disputed", before=payment["status"], cents=amount, unspent=unspent, debt=debt
    )
    auto_top_up.stop_after_dispute(conn, payment["user_id"])
    events.emit(
        conn,
        payment["user_id"],
        events.DISPUTE_CREATED,
        {**_payment_event(payment, payment["amount_refunded"]), "disputedAmount": events.usd(amount)},
    )
    return True


def _close_dispute(conn: db.Conn, payment: dict[str, Any], status: Any, event_id: str) -> bool:
    """Won: everything the dispute took comes back (paying any debt first); lost: it stays taken."""
    if payment["status"] != "disputed" or status != "won":
        return False
    ledger.give_back(
        conn,
        payment,
        payment["dispute_unspent"] + payment["dispute_debt"],
        kind="dispute_won",
        key=f"dispute-won:{payment['id']}",
    )
    db.record_dispute(
        conn,
        payment["id"],
        status=payment["status_before_dispute"] or "completed",
        before=None,
        cents=0,
        unspent=Decimal(0),
        debt=Decimal(0),
    )
    logger.info("dispute won", extra={"event_id": event_id, "payment_id": str(payment["id"])})
    return True


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def cents(value: Any) -> int:
    """An amount in cents as Stripe sends it; anything that is not a non-negative integer counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def collected(payment: dict[str, Any], obj: dict[str, Any], event_id: str) -> int:
    """What to credit, in cents: what Stripe collected (`amount_total`), never more than the payment asked for.
    A different total (a discount, a currency we did not ask for) is logged and counted."""
    asked = payment["amount"]
    total = obj.get("amount_total")
    if obj.get("currency") not in (None, payment["currency"]):
        collected = 0  # not the currency we asked for: nothing we can credit as USD
    elif isinstance(total, int) and not isinstance(total, bool):
        collected = min(max(total, 0), asked)
    else:
        collected = asked  # an event without a total (older API versions' async success): the session's amount
    if collected != asked or total != asked:
        logger.warning(
            "checkout total differs from the payment's amount",
            extra={"event_id": event_id, "payment_id": str(payment["id"]), "amount_total": total, "amount": asked},
        )
        count("CheckoutTotalDiffers")
    return collected


def _find_payment(conn: db.Conn, obj: dict[str, Any]) -> dict[str, Any] | None:
    metadata = mapping(obj.get("metadata"))
    obj_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    is_session = obj.get("object") == "checkout.session"
    intent = obj_id if obj.get("object") == "payment_intent" else obj.get("payment_intent")
    return db.lock_payment(
        conn,
        payment_id=as_uuid(metadata.get("paymentId")),
        session_id=obj_id if is_session else None,
        payment_intent=intent if isinstance(intent, str) else None,
    )


def _await_delayed_payment(conn: db.Conn, payment: dict[str, Any], payment_intent: Any) -> None:
    """A session completed with a delayed method (a bank debit) is still being paid: its payment intent on the
    payment keeps housekeeping from expiring it while the money is on its way."""
    if payment["status"] == "pending" and isinstance(payment_intent, str):
        db.update_payment(
            conn,
            payment["id"],
            status="pending",
            stripe_payment_id=payment_intent,
            amount_refunded=payment["amount_refunded"],
        )


def complete(conn: db.Conn, payment: dict[str, Any], payment_intent: Any, collected: int) -> None:
    """Credits what was collected once (its ledger key is the payment id), then any refund that arrived first."""
    amount = Decimal(collected) / CENTS
    credited = amount > 0 and ledger.credit(
        conn,
        payment["user_id"],
        amount,
        kind="payment_credit",
        key=f"payment:{payment['id']}",
        reference_id=payment["id"],
        paid=amount,
        payment_id=payment["id"],
    )
    refunded = payment["amount_refunded"]
    if refunded:
        _debit_refund(conn, payment, 0, refunded)
    db.update_payment(
        conn,
        payment["id"],
        status="refunded" if refunded else "completed",
        stripe_payment_id=payment_intent if isinstance(payment_intent, str) else None,
        amount_refunded=refunded,
    )
    if not credited:  # completed before (another event for the same payment): reported then
        return
    events.emit(conn, payment["user_id"], events.PAYMENT_SUCCEEDED, _payment_event({**payment, "amount": collected}, 0))
    if refunded:
        events.emit(conn, payment["user_id"], events.PAYMENT_REFUNDED, _payment_event(payment, refunded, refunded))


def _refund(conn: db.Conn, payment: dict[str, Any], total_refunded: int, payment_intent: Any) -> None:
    """Charge.refunded carries the cumulative refunded amount: debit only what is new."""
    previous = payment["amount_refunded"]
    total = min(max(total_refunded, previous), payment["amount"])
    if payment["status"] in ("completed", "refunded") and total > previous:
        _debit_refund(conn, payment, previous, total)
        events.emit(conn, payment["user_id"], events.PAYMENT_REFUNDED, _payment_event(payment, total, total - previous))
    status = "refunded" if payment["status"] in ("completed", "refunded") and total else payment["status"]
    db.update_payment(
        conn,
        payment["id"],
        status=status,
        stripe_payment_id=payment_intent if isinstance(payment_intent, str) else None,
        amount_refunded=total,
    )


def _payment_event(payment: dict[str, Any], amount_refunded: int, refunded_now: int | None = None) -> dict[str, Any]:
    """A payment event's data: dollar amounts as decimal strings; a refund also says what this refund returned."""
    data = {
        "paymentId": payment["id"],
        "amount": events.usd(payment["amount"]),
        "amountRefunded": events.usd(amount_refunded),
        "currency": payment["currency"],
        "echoAppId": payment["echo_app_id"],
    }
    if refunded_now is not None:
        data["refundedAmount"] = events.usd(refunded_now)
    return data


def _debit_refund(conn: db.Conn, payment: dict[str, Any], previous: int, total: int) -> None:
    """Takes back what is left of the payment's credits, up to what is newly refunded, held ones included (the
    holds lose it); spent credits stay spent, and the balance never goes below zero."""
    wanted = Decimal(total - previous) / CENTS
    db.pause_auto_top_up(conn)  # money taken back never charges the card again
    taken, _ = ledger.take_back(
        conn, payment, wanted, kind="refund", key=f"refund:{payment['id']}:{total}", spent_becomes_debt=False
    )
    if taken < wanted:
        logger.warning(
            "refund exceeds the payment's unspent credits",
            extra={"payment_id": str(payment["id"]), "uncollected": str(wanted - taken)},
        )


# --- the local mock checkout -------------------------------------------------------------------------


def is_mock(identifier: str, prefix: str) -> bool:
    """Whether a local mock's page may act for `identifier` (a mock's own, by its prefix): only locally, never in the
    cloud whatever the secrets say, and only without a Stripe key."""
    if config.settings().in_cloud:
        return False
    return config.stripe_credentials().secret_key is None and identifier.startswith(prefix)


def mock_session(session_id: str) -> dict[str, Any]:
    """The pending payment behind a mock checkout session: only locally, and only without a Stripe key."""
    if not is_mock(session_id, MOCK_SESSION_PREFIX):
        raise NotFound("No such checkout session")
    with db.transaction() as conn:
        payment = db.lock_payment(conn, payment_id=None, session_id=session_id, payment_intent=None)
    if payment is None:
        raise NotFound("No such checkout session")
    return payment


def mock_pay(session_id: str, webhook_url: str) -> dict[str, Any]:
    """Does what Stripe does when a customer pays: sends our webhook endpoint (`webhook_url`, this server's own,
    origins.own_webhook_url) a signed completed event."""
    payment = mock_session(session_id)
    session = {
        "id": session_id,
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": payment["amount"],
        "currency": payment["currency"],
        "client_reference_id": str(payment["user_id"]),
        "metadata": {"paymentId": str(payment["id"]), "userId": str(payment["user_id"])},
        "payment_intent": "pi_mock_" + secrets.token_hex(12),
    }
    status = send_signed_event(webhook_url, "checkout.session.completed", session)
    return {"status": status, "payment": payment}


def send_signed_event(
    webhook_url: str, event_type: str, obj: dict[str, Any], *, secret: str | None = None, account: str | None = None
) -> int:
    """Does what Stripe does for the local mocks: POSTs our webhook endpoint (`webhook_url`, this server's own,
    origins.own_webhook_url) an event about `obj`, signed with the webhook secret (or `secret`: the Connect one for
    an event on the connected `account`). Returns the endpoint's status."""
    event: dict[str, Any] = {
        "id": "evt_mock_" + secrets.token_hex(12),
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "type": event_type,
        "data": {"object": obj},
    }
    if account is not None:
        event["account"] = account  # an event on a connected account, as Connect endpoints receive them
    payload = json.dumps(event)
    request = urllib.request.Request(  # noqa: S310 - our own webhook URL, http(s) from configuration
        webhook_url,
        data=payload.encode(),
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sign_payload(payload, secret or config.stripe_credentials().webhook_secret),
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own webhook URL
        return int(response.status)
