"""Automatic top-up: a card saved for off-session charges (Stripe Checkout in setup mode, one Stripe Customer per
user), the settings, and the charges, which start outside the call that made them needed.

A statement that lowers what a user can spend below their threshold (a call, a settle, a hold, an admin's debit, an
expired grant) requests one charge of their amount in that same statement (the trigger of migration 0022): no Stripe
call and no round trip is added to the metering path. Never two in flight for a user, never past the monthly limit
in a UTC calendar month (what succeeded and what is in flight count). A worker sends each request to Stripe as an
off-session PaymentIntent whose Idempotency-Key is the user's and the charge's sequence, so a retry after a lost
answer makes the same charge. It is credited when Stripe confirms it (`payment_intent.succeeded`), once, like any
payment (a lot of source `payment`; it pays debt first; refunds and disputes act on it). A decline, a required
authentication (3-D Secure) or a refusal turns auto top-up off, says why (`lastError`) and sends
`auto_top_up.failed` to the user's webhooks.

Without a Stripe key (only ever locally) the card is saved on a mock setup page, and the mock charge succeeds at once
(test cards that decline or ask for authentication fail as Stripe's would), confirmed by a signed webhook as the mock
checkout's is. Locally the runner's thread sends requests as soon as they commit (NOTIFY); in the cloud a scheduled
function does, every minute."""

import secrets
import threading
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from echo_control import config, db, events, payments
from echo_control.errors import BadGateway, Conflict, NotFound, Unprocessable
from echo_control.models import AutoTopUpCharge, AutoTopUpIn, AutoTopUpOut, SavedCard, SetupLinkOut
from echo_control.observability import count, logger

CENTS = Decimal(100)
MOCK_SETUP_PREFIX = "cs_mock_setup_"
MOCK_CUSTOMER_PREFIX = "cus_mock_"
MOCK_CARD_PREFIX = "pm_mock_"
MOCK_INTENT_PREFIX = "pi_mock_"
# The mock setup page's test cards, as Stripe's test numbers behave off-session: (brand, last4) by kind.
MOCK_CARDS = {"succeeds": ("visa", "4242"), "declines": ("visa", "0002"), "authentication": ("visa", "3184")}
IN_FLIGHT = ("requested", "processing")
CHARGES_SHOWN = 50
# Stripe events: a card saved (a setup session completed, or its SetupIntent), a charge confirmed.
SETUP_SUCCEEDED = "setup_intent.succeeded"
CHARGE_SUCCEEDED, CHARGE_FAILED = "payment_intent.succeeded", "payment_intent.payment_failed"
EVENTS = {SETUP_SUCCEEDED, CHARGE_SUCCEEDED, CHARGE_FAILED}
# When Stripe does not answer, the same charge (same Idempotency-Key) is sent again after these waits; then it fails.
# All of them well within the 24 hours Stripe keeps an idempotency key.
RETRY_AFTER = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
)
BATCH = 50
# A charge in flight this long (Stripe has not answered, or its confirmation has not come) is counted for the alarm.
WAITING_TOO_LONG = timedelta(minutes=15)


def idempotency_key(charge: dict[str, Any]) -> str:
    """Stripe's Idempotency-Key of a charge: per user and sequence, so every retry of it is the same charge."""
    return f"auto-top-up-{charge['user_id']}-{charge['sequence']}"


# --- saving a card ---------------------------------------------------------------------------------------------


def setup_link(user_id: UUID, email: str, *, base_url: str, return_path: str = "/balance") -> SetupLinkOut:
    """A Checkout session in setup mode that saves a card for off-session charges to the user's Stripe Customer
    (made on first use, kept after); Stripe brings them back to `return_path` (a same-site path) on `base_url`."""
    credentials = config.stripe_credentials()  # a misconfigured deployment refuses before making anything
    customer = db.billing_customer(user_id)
    if credentials.secret_key is None:  # only ever locally: the mock setup page
        made_up = MOCK_CUSTOMER_PREFIX + secrets.token_hex(12)
        customer_id = customer["stripe_customer_id"] if customer else db.keep_billing_customer(user_id, made_up)
        session_id = MOCK_SETUP_PREFIX + secrets.token_urlsafe(24)
        url = f"{base_url}/setup/mock/{session_id}?" + urlencode({"return": return_path})
    else:
        import stripe

        client = payments.stripe_client(credentials.secret_key)
        try:
            if customer is None:
                made = client.v1.customers.create(
                    params={"email": email, "metadata": {"userId": str(user_id)}},
                    # two first clicks at once make one customer: Stripe answers the second with the first's
                    options={"idempotency_key": f"customer-{user_id}"},
                )
                customer_id = db.keep_billing_customer(user_id, made.id)
            else:
                customer_id = customer["stripe_customer_id"]
            session = client.v1.checkout.sessions.create(
                params={
                    "mode": "setup",
                    "customer": customer_id,
                    "payment_method_types": ["card"],
                    "client_reference_id": str(user_id),
                    "metadata": {"userId": str(user_id), "purpose": "auto_top_up"},
                    "setup_intent_data": {
                        "metadata": {"userId": str(user_id)},
                        "description": "Echo credits: automatic top-up",
                    },
                    "success_url": base_url + payments.with_query(return_path, card="saved"),
                    "cancel_url": base_url + payments.with_query(return_path, card="cancelled"),
                }
            )
        except stripe.AuthenticationError:
            raise config.misconfigured("Stripe refused the secret key while starting a card setup") from None
        except stripe.StripeError as exc:
            logger.warning("Stripe refused a card setup", extra={"error": type(exc).__name__})
            raise BadGateway("Stripe could not start saving a card; try again shortly") from exc
        session_id, url = session.id, str(session.url)
    db.insert_card_setup(session_id, user_id)
    return SetupLinkOut(url=url, session_id=session_id)


def is_card_event(event_type: str, obj: dict[str, Any]) -> bool:
    """A Stripe event that saves a card: a SetupIntent that succeeded, or a setup-mode Checkout session completed."""
    return event_type == SETUP_SUCCEEDED or (event_type == "checkout.session.completed" and obj.get("mode") == "setup")


def card_of_event(event_type: str, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The payment method an event saved, with its card (asked of Stripe when the event names it only), before the
    event's transaction: no Stripe call waits inside it. None when the event names none."""
    if event_type == SETUP_SUCCEEDED:
        method = obj.get("payment_method")
        intent_id = None
    else:
        method, intent_id = None, obj.get("setup_intent")
        if isinstance(intent_id, dict):  # expanded
            method, intent_id = intent_id.get("payment_method"), None
    secret_key = config.stripe_credentials().secret_key
    if (isinstance(method, str) or isinstance(intent_id, str)) and secret_key is not None:
        import stripe

        client = payments.stripe_client(secret_key)
        try:
            if isinstance(intent_id, str):
                intent = client.v1.setup_intents.retrieve(intent_id, params={"expand": ["payment_method"]})
                method = intent.to_dict().get("payment_method")
            if isinstance(method, str):
                method = client.v1.payment_methods.retrieve(method).to_dict()
        except stripe.AuthenticationError:
            raise config.misconfigured("Stripe refused the secret key while reading a saved card") from None
        except stripe.StripeError as exc:  # Stripe delivers the event again later
            logger.warning("saved card could not be read from Stripe", extra={"error": type(exc).__name__})
            raise BadGateway("Stripe did not answer for the saved card; deliver the event again") from exc
    if isinstance(method, str):
        return {"id": method}
    return method if isinstance(method, dict) and isinstance(method.get("id"), str) else None


def save_card(conn: db.Conn, event_type: str, obj: dict[str, Any], method: dict[str, Any] | None) -> bool:
    """Stores the card a setup saved as the one the user's charges go to; True when it changed something. The user
    is the one whose setup session it was, or whose Stripe Customer it names."""
    customer_id = obj.get("customer")
    customer = db.customer_for_stripe_id(conn, customer_id) if isinstance(customer_id, str) else None
    session_id = obj.get("id") if event_type != SETUP_SUCCEEDED and isinstance(obj.get("id"), str) else None
    setup = db.card_setup(session_id) if session_id else None
    if customer is None or method is None or (setup is not None and setup["user_id"] != customer["user_id"]):
        logger.warning("a saved card for no customer of ours", extra={"type": event_type, "customer": customer_id})
        return False
    card = payments.mapping(method.get("card"))
    db.save_card(
        conn,
        customer["user_id"],
        payment_method_id=method["id"],
        brand=_text(card.get("brand"), 40),
        last4=_text(card.get("last4"), 4),
        exp_month=_number(card.get("exp_month")),
        exp_year=_number(card.get("exp_year")),
        session_id=session_id,
    )
    return True


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10_000 else None


# --- settings --------------------------------------------------------------------------------------------------


def _charge_out(row: dict[str, Any]) -> AutoTopUpCharge:
    return AutoTopUpCharge(
        id=str(row["id"]),
        amount=row["amount"],
        status=row["status"],
        payment_id=str(row["payment_id"]) if row["payment_id"] else None,
        error_code=row["error_code"],
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def settings(user_id: UUID) -> AutoTopUpOut:
    """The settings, this month's charges (and one in flight from before), the saved card and the last error."""
    row = db.auto_top_up_settings(user_id) or {}
    customer = db.billing_customer(user_id) or {}
    charges = [_charge_out(c) for c in db.charges_this_month(user_id, CHARGES_SHOWN)]
    card = None
    if customer.get("payment_method_id"):
        card = SavedCard(
            brand=customer["card_brand"],
            last4=customer["card_last4"],
            exp_month=customer["card_exp_month"],
            exp_year=customer["card_exp_year"],
            saved_at=customer["card_saved_at"],
        )
    return AutoTopUpOut(
        enabled=bool(row.get("enabled")),
        threshold=row.get("threshold"),
        amount=row.get("amount"),
        monthly_limit=row.get("monthly_limit"),
        charged_this_month=row.get("charged_this_month", Decimal("0.000000")),
        in_flight=next((c for c in charges if c.status in IN_FLIGHT), None),
        last_error=row.get("last_error"),
        last_error_code=row.get("last_error_code"),
        last_error_at=row.get("last_error_at"),
        card=card,
        charges=charges,
    )


def configure(user_id: UUID, body: AutoTopUpIn) -> AutoTopUpOut:
    """Turns auto top-up on or off and sets its numbers (an omitted one keeps what is stored). Turning it on needs
    all three and a saved card (409 `card_required`); the amount stays within what a payment link may buy, the
    monthly limit at least the amount (422). Turning it off cancels a charge no worker has sent yet; turning it on
    again forgets the last error. Under the balance row's lock, as the trigger that reads the threshold."""
    maximum = config.settings().max_payment_usd
    if body.amount is not None and body.amount > maximum:  # a deployment may sell less at once than the contract
        raise Unprocessable(f"amount must be at most {maximum}", details={"field": "amount", "max": str(maximum)})
    with db.transaction() as conn:
        db.lock_funds(conn, user_id)
        current = db.lock_auto_top_up(conn, user_id) or {}
        threshold = body.threshold if body.threshold is not None else current.get("threshold")
        amount = body.amount if body.amount is not None else current.get("amount")
        monthly_limit = body.monthly_limit if body.monthly_limit is not None else current.get("monthly_limit")
        if threshold is None or amount is None or monthly_limit is None:
            if not body.enabled and all(v is None for v in (body.threshold, body.amount, body.monthly_limit)):
                return settings(user_id)  # off, and nothing was ever set: nothing to store
            missing = [
                n
                for n, v in (("threshold", threshold), ("amount", amount), ("monthlyLimit", monthly_limit))
                if v is None
            ]
            raise Unprocessable(
                f"{', '.join(missing)} must be given (nothing is stored for them yet)", details={"fields": missing}
            )
        if monthly_limit < amount:
            raise Unprocessable(
                "monthlyLimit must be at least amount: a month could not hold a single charge",
                details={"field": "monthlyLimit", "min": str(amount)},
            )
        if body.enabled and not (db.billing_customer(user_id) or {}).get("payment_method_id"):
            raise Conflict(
                "Save a card first (POST /api/stripe/setup-link): auto top-up charges it", code="card_required"
            )
        db.store_auto_top_up(
            conn,
            user_id,
            enabled=body.enabled,
            threshold=threshold,
            amount=amount,
            monthly_limit=monthly_limit,
            clear_error=body.enabled and not current.get("enabled"),
        )
        if not body.enabled:
            db.cancel_unsent_charge(conn, user_id)
    return settings(user_id)


# --- charging --------------------------------------------------------------------------------------------------


def charge_due(webhook_url: str | None = None, limit: int = BATCH) -> dict[str, int]:
    """Sends up to `limit` requested charges to Stripe (without a key: the mock's, confirmed through `webhook_url`,
    our own webhook endpoint); how many were sent, failed, or wait for another attempt."""
    secret_key = config.stripe_credentials().secret_key
    if secret_key is None and webhook_url is None:
        logger.warning("mock auto top-up charges wait: no webhook address to confirm them to")
        return {}
    done: Counter[str] = Counter()
    for charge in db.lease_due_charges(limit):
        try:
            done[_send(charge, secret_key, webhook_url)] += 1
        except Exception:  # recorded nothing: the lease ends and the same charge is sent again
            logger.exception("auto top-up charge failed to record", extra={"charge_id": str(charge["id"])})
            db.discard_connection()
            done["error"] += 1
    return dict(done)


def _send(charge: dict[str, Any], secret_key: str | None, webhook_url: str | None) -> str:
    """One leased charge to Stripe (or the mock); what became of it: sent, failed, or later."""
    charge["payment_id"] = charge["payment_id"] or db.attach_payment(charge["id"])
    if not charge["payment_method_id"]:
        return _fail(charge, "card_required", "No card is saved for auto top-up")
    if secret_key is None:
        return _mock_charge(charge, webhook_url or "")
    import stripe

    cents = int(charge["amount"] * CENTS)
    try:
        intent = payments.stripe_client(secret_key).v1.payment_intents.create(
            params={
                "amount": cents,
                "currency": "usd",
                "customer": charge["stripe_customer_id"],
                "payment_method": charge["payment_method_id"],
                "off_session": True,
                "confirm": True,
                "description": f"Echo credits: automatic top-up (${charge['amount']:.2f})",
                "metadata": {
                    "paymentId": str(charge["payment_id"]),
                    "userId": str(charge["user_id"]),
                    "autoTopUpId": str(charge["id"]),
                },
            },
            options={"idempotency_key": idempotency_key(charge)},
        )
    except stripe.CardError as exc:  # a decline, or the bank wants the customer present (3-D Secure)
        code = failure_code(exc.code)
        return _fail(charge, code, _reason(exc, code))
    except (stripe.InvalidRequestError, stripe.PermissionError, stripe.IdempotencyError) as exc:
        return _fail(charge, exc.code or "charge_refused", _reason(exc, exc.code or "charge_refused"))
    except stripe.AuthenticationError:
        config.misconfigured("Stripe refused the secret key while charging an auto top-up")
        return _later(charge)
    except stripe.StripeError as exc:  # no answer, or one that says nothing of the charge: it may exist
        logger.warning(
            "auto top-up outcome unknown", extra={"charge_id": str(charge["id"]), "error": type(exc).__name__}
        )
        return _later(charge)
    if intent.status in ("succeeded", "processing"):
        with db.transaction() as conn:
            db.charge_sent(conn, charge["id"], intent.id)
        count("AutoTopUpCharged")
        return "sent"
    if intent.status == "requires_action":
        return _fail(charge, "requires_action", _reason(None, "requires_action"))
    code = failure_code(payments.mapping(intent.to_dict().get("last_payment_error")).get("code"))
    return _fail(charge, code, _reason(None, code))


def failure_code(code: Any) -> str:
    """What lastErrorCode says of a failed charge: requires_action when the bank wants the customer present (Stripe's
    authentication_required off-session), else Stripe's code (card_declined when it gave none)."""
    if code == "authentication_required":
        return "requires_action"
    return code[:100] if isinstance(code, str) and code else "card_declined"


def _reason(exc: Any, code: str) -> str:
    """Why a charge failed, in words the balance page shows."""
    if code == "requires_action":
        return (
            "Your bank asked to confirm the charge (3-D Secure), which cannot happen while you are away: buy credits "
            "once with this card, or save another card, then turn auto top-up on again."
        )
    said = getattr(exc, "user_message", None) or (str(exc) if exc is not None else "")
    return (said or "Your card was declined.").strip()[:400] + f" ({code})"


def _later(charge: dict[str, Any]) -> str:
    """No answer: the same charge again after the next wait, or, after the last, it fails (a charge Stripe made after
    all is still credited when its confirmation comes)."""
    if charge["attempts"] > len(RETRY_AFTER):
        return _fail(charge, "no_answer", "Stripe did not answer for hours; the charge was given up")
    db.retry_charge(charge["id"], RETRY_AFTER[charge["attempts"] - 1])
    count("AutoTopUpNoAnswer")
    return "later"


def _fail(charge: dict[str, Any], code: str, message: str) -> str:
    with db.transaction() as conn:
        payment = db.lock_payment(conn, payment_id=charge["payment_id"], session_id=None, payment_intent=None)
        failed(conn, charge["id"], payment, code, message)
    return "failed"


def failed(conn: db.Conn, charge_id: UUID, payment: dict[str, Any] | None, code: str, message: str) -> bool:
    """The charge failed (Stripe refused it, or a payment_intent.payment_failed came): it and its payment fail,
    auto top-up turns off saying why, and the user's webhooks hear `auto_top_up.failed`; True when it was in
    flight. The caller locked the payment (which every settling of a charge locks first)."""
    charge = db.charge_by_id(conn, charge_id)
    if charge is None or charge["status"] not in IN_FLIGHT:
        return False
    db.turn_off_auto_top_up(conn, charge["user_id"], code, message)
    db.settle_charge(conn, charge_id, succeeded=False, code=code, error=message)
    if payment is not None and payment["status"] == "pending":
        db.update_payment(
            conn, payment["id"], status="failed", stripe_payment_id=None, amount_refunded=payment["amount_refunded"]
        )
    events.emit(
        conn,
        charge["user_id"],
        events.AUTO_TOP_UP_FAILED,
        {
            "autoTopUpId": charge["id"],
            "paymentId": charge["payment_id"],
            "amount": events.usd(int(charge["amount"] * CENTS)),
            "code": code,
            "message": message,
        },
    )
    logger.warning("auto top-up failed and turned off", extra={"charge_id": str(charge_id), "code": code})
    count("AutoTopUpFailed")
    return True


def confirmed(conn: db.Conn, payment: dict[str, Any], obj: dict[str, Any], event_id: str) -> bool:
    """payment_intent.succeeded: the charge behind the payment (locked by the caller) is credited once, like any
    payment, paying debt first; False for a payment intent that is no charge of ours (a checkout's: its session's
    event credits it)."""
    charge = db.charge_of_payment(conn, payment["id"])
    if charge is None:
        return False
    collected = payments.collected(payment, {**obj, "amount_total": obj.get("amount_received")}, event_id)
    payments.complete(conn, payment, obj.get("id"), collected)
    if charge["status"] != "succeeded":  # also a charge given up for want of an answer that Stripe made after all
        db.settle_charge(conn, charge["id"], succeeded=True, code=None, error=None)
    return True


def apply_payment_event(
    conn: db.Conn, event_type: str, payment: dict[str, Any], obj: dict[str, Any], event_id: str
) -> bool | None:
    """A Stripe event about a charge's payment (locked by the caller): payment_intent.succeeded credits it,
    payment_intent.payment_failed fails it (auto top-up off, and why); None when the payment is no charge's or the
    event none of these (payments applies it as any payment's: a refund, a dispute)."""
    if event_type not in (CHARGE_SUCCEEDED, CHARGE_FAILED) or db.charge_of_payment(conn, payment["id"]) is None:
        return None
    if event_type == CHARGE_SUCCEEDED:
        return confirmed(conn, payment, obj, event_id)
    error = payments.mapping(obj.get("last_payment_error"))
    code = failure_code(error.get("code"))
    said = error.get("message") if isinstance(error.get("message"), str) else None
    message = _reason(None, code) if code == "requires_action" or not said else f"{said[:400]} ({code})"
    charge = db.charge_of_payment(conn, payment["id"])
    assert charge is not None
    return failed(conn, charge["id"], payment, code, message)


def stop_after_dispute(conn: db.Conn, user_id: UUID) -> None:
    """A payment of the user was disputed: their card is not charged off-session again until they turn it on."""
    db.turn_off_auto_top_up(
        conn,
        user_id,
        "payment_disputed",
        "A payment of yours was disputed, so auto top-up stopped charging your card; turn it on again if you wish.",
        only_if_enabled=True,
    )


# --- the local mock --------------------------------------------------------------------------------------------


def mock_setup(session_id: str) -> dict[str, Any]:
    """The setup session behind a mock setup page: only locally, and only without a Stripe key."""
    if not payments.is_mock(session_id, MOCK_SETUP_PREFIX):
        raise NotFound("No such card setup")
    setup = db.card_setup(session_id)
    customer = db.billing_customer(setup["user_id"]) if setup else None
    if setup is None or customer is None:
        raise NotFound("No such card setup")
    return {**setup, "stripe_customer_id": customer["stripe_customer_id"]}


def mock_complete_setup(session_id: str, webhook_url: str, card: str = "succeeds") -> int:
    """Does what Stripe does when a customer saves a card: sends our webhook endpoint a signed
    setup_intent.succeeded with the payment method (a test card of `card`'s kind). Returns the endpoint's status."""
    setup = mock_setup(session_id)
    kind = card if card in MOCK_CARDS else "succeeds"
    brand, last4 = MOCK_CARDS[kind]
    method = {
        "id": f"{MOCK_CARD_PREFIX}{kind}_{secrets.token_hex(8)}",
        "object": "payment_method",
        "type": "card",
        "customer": setup["stripe_customer_id"],
        "card": {"brand": brand, "last4": last4, "exp_month": 12, "exp_year": time.gmtime().tm_year + 8},
    }
    intent = {
        "id": "seti_mock_" + secrets.token_hex(12),
        "object": "setup_intent",
        "status": "succeeded",
        "usage": "off_session",
        "customer": setup["stripe_customer_id"],
        "payment_method": method,
        "metadata": {"userId": str(setup["user_id"])},
    }
    return payments.send_signed_event(webhook_url, SETUP_SUCCEEDED, intent)


def _mock_charge(charge: dict[str, Any], webhook_url: str) -> str:
    """The mock's off-session charge: a declining or authenticating test card fails as Stripe's would; any other
    succeeds at once, confirmed by a signed payment_intent.succeeded to our own webhook endpoint."""
    method = str(charge["payment_method_id"])
    if method.startswith(MOCK_CARD_PREFIX + "declines"):
        return _fail(charge, "card_declined", "Your card was declined. (card_declined: a declining test card)")
    if method.startswith(MOCK_CARD_PREFIX + "authentication"):
        return _fail(charge, "requires_action", _reason(None, "requires_action"))
    cents = int(charge["amount"] * CENTS)
    intent = {
        "id": MOCK_INTENT_PREFIX + charge["id"].hex[:24],  # the same on every attempt, as Stripe's would be
        "object": "payment_intent",
        "status": "succeeded",
        "amount": cents,
        "amount_received": cents,
        "currency": "usd",
        "customer": charge["stripe_customer_id"],
        "payment_method": method,
        "metadata": {
            "paymentId": str(charge["payment_id"]),
            "userId": str(charge["user_id"]),
            "autoTopUpId": str(charge["id"]),
        },
    }
    try:
        payments.send_signed_event(webhook_url, CHARGE_SUCCEEDED, intent)
    except OSError as exc:  # our own endpoint did not answer: the same charge again later
        logger.warning("mock auto top-up confirmation not delivered", extra={"error": str(exc)})
        return _later(charge)
    with db.transaction() as conn:
        db.charge_sent(conn, charge["id"], intent["id"])  # settled by the confirmation already: nothing changes
    return "sent"


# --- workers ---------------------------------------------------------------------------------------------------


def run_local(stop: threading.Event, webhook_url: str) -> None:
    """The local runner's worker: sends requested charges, then sleeps until a statement that requested one commits
    (NOTIFY), or a few seconds pass (retries come due)."""
    import psycopg

    while not stop.is_set():
        try:
            with psycopg.connect(config.database_url(), autocommit=True) as listener:
                listener.execute(f"LISTEN {db.AUTO_TOP_UP_CHANNEL}")
                while not stop.is_set():
                    while sum(charge_due(webhook_url).values()) == BATCH and not stop.is_set():
                        pass
                    for _ in listener.notifies(timeout=2.0, stop_after=1):
                        pass
        except Exception:
            logger.exception("local auto top-up worker: retrying in a second")
            db.discard_connection()
            stop.wait(1.0)


def start_local(webhook_url: str) -> threading.Thread:
    """Starts run_local on a daemon thread (the local runner's), confirming mock charges to `webhook_url`."""
    stop = threading.Event()
    thread = threading.Thread(target=run_local, args=(stop, webhook_url), name="auto-top-up", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    return thread


def run_scheduled() -> dict[str, int]:
    """The cloud's worker, every minute: sends what is due and counts charges in flight for too long (their alarm).
    (A local `make invoke` without a Stripe key confirms mock charges to ECHO_PUBLIC_URL, when set.)"""
    public_url = config.settings().public_url
    done = charge_due(f"{public_url}/api/stripe/webhook" if public_url else None)
    waiting = db.charges_waiting(WAITING_TOO_LONG)
    if waiting:
        logger.warning("auto top-up charges waiting", extra={"waiting": waiting})
        count("AutoTopUpsWaiting", waiting)
    return {
        "sent": done.get("sent", 0),
        "failed": done.get("failed", 0),
        "later": done.get("later", 0),
        "waiting": waiting,
    }
