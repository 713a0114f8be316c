"""Payouts of earnings to the owner's Stripe Connect (Express) account: onboarding, transfers, and the Connect and
transfer events that say what became of them.

A payout moves its amount from available to pending (one database transaction, under the owner's account lock),
then asks Stripe for a Transfer whose idempotency key is the payout's id, so any retry makes the same transfer.
What Stripe answers decides the rest: the transfer made, pending becomes paid out; a refusal (a 4xx from Stripe:
nothing was made) returns the money to available; no answer leaves the payout pending, to be completed by a retry
with the same Idempotency-Key. A reversed transfer (`transfer.reversed`) returns what was reversed, once.

Without a Stripe key (only ever locally) a mock onboarding page stands in for Stripe's and sends our webhook a signed
`account.updated`, and transfers are made up on the spot."""

import secrets
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from echo_control import config, db, events, idempotency, payments
from echo_control.errors import BadGateway, Conflict, NotFound, PaymentRequired, Unprocessable
from echo_control.identity import as_uuid
from echo_control.models import PayoutAccountOut, PayoutCreate, PayoutList, PayoutOut
from echo_control.observability import logger

CENTS = Decimal(100)
MOCK_ACCOUNT_PREFIX = "acct_mock_"
MOCK_TRANSFER_PREFIX = "tr_mock_"
ACCOUNT_EVENTS = {"account.updated"}
# The owner disconnected their account from our platform: no more payouts to it.
DEAUTHORIZED_EVENTS = {"account.application.deauthorized"}
# transfer.failed is no longer sent by Stripe's current API versions; an account pinned to an older one may send it.
TRANSFER_EVENTS = {"transfer.reversed", "transfer.failed"}
EVENTS = ACCOUNT_EVENTS | DEAUTHORIZED_EVENTS | TRANSFER_EVENTS
HISTORY_LIMIT = 100


def to_out(row: dict[str, Any]) -> PayoutOut:
    return PayoutOut(
        id=str(row["id"]),
        amount=row["amount"],
        status=row["status"],
        amount_returned=row["amount_returned"],
        stripe_transfer_id=row["stripe_transfer_id"],
        failure_reason=row["failure_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def list_payouts(user_id: UUID) -> PayoutList:
    return PayoutList(payouts=[to_out(r) for r in db.payouts_for_user(user_id, HISTORY_LIMIT)])


# --- onboarding ----------------------------------------------------------------------------------------


def onboarding_link(user_id: UUID, email: str, *, base_url: str, return_path: str = "/earnings") -> PayoutAccountOut:
    """The owner's connected account (made on first use, reused after) and a link to Stripe's onboarding for it;
    Stripe brings the owner back to `return_path` (a same-site path) on `base_url`."""
    credentials = config.connect_credentials()  # a misconfigured deployment refuses before making anything
    account = db.earnings_account(user_id) or {}
    account_id = account.get("stripe_account_id")
    if credentials.secret_key is None:  # only ever locally: the mock onboarding
        if not account_id:
            account_id = db.keep_stripe_account(user_id, MOCK_ACCOUNT_PREFIX + secrets.token_hex(12))
        url = f"{base_url}/connect/mock/{account_id}?" + urlencode({"return": return_path})
    else:
        import stripe

        client = payments.stripe_client(credentials.secret_key)
        try:
            if not account_id:
                created = client.v1.accounts.create(
                    params={
                        "type": "express",
                        "email": email,
                        "capabilities": {"transfers": {"requested": True}},
                        "metadata": {"userId": str(user_id)},
                    },
                    # two first clicks at once make one account: Stripe answers the second with the first's
                    options={"idempotency_key": f"connect-account-{user_id}"},
                )
                account_id = db.keep_stripe_account(user_id, created.id)
            link = client.v1.account_links.create(
                params={
                    "account": account_id,
                    "type": "account_onboarding",
                    "refresh_url": base_url + payments.with_query(return_path, onboarding="refresh"),
                    "return_url": base_url + payments.with_query(return_path, onboarding="return"),
                }
            )
        except stripe.StripeError as exc:
            logger.warning("Stripe refused onboarding", extra={"error": type(exc).__name__})
            raise BadGateway("Stripe could not start onboarding; try again shortly") from exc
        url = link.url
    return PayoutAccountOut(url=url, account_id=account_id, payouts_enabled=bool(account.get("payouts_enabled")))


# --- payouts -------------------------------------------------------------------------------------------


def request_payout(user_id: UUID, body: PayoutCreate, idempotency_key: str | None) -> tuple[PayoutOut, bool]:
    """Pays the amount of the owner's available earnings out to their connected account: (the payout, replayed).

    The same Idempotency-Key with the same amount answers the same payout as it is now (completing it if it is still
    pending); with another amount it is 409. Below the minimum is 422, before onboarding 409, above available 402."""
    amount = body.amount
    minimum = config.settings().min_payout_usd
    if amount < minimum:
        raise Unprocessable(
            f"A payout must be at least {minimum} USD",
            details={"field": "amount", "minimum": str(minimum)},
            code="below_minimum_payout",
        )
    credentials = config.connect_credentials()

    def start(conn: db.Conn) -> PayoutOut:
        account = db.lock_earnings_account(conn, user_id)  # one payout of an owner at a time
        if account is None or not account["payouts_enabled"] or not account["stripe_account_id"]:
            raise Conflict(
                "Payouts are not enabled: finish onboarding (POST /api/payouts/account) first",
                code="payouts_not_enabled",
            )
        if account["available"] < amount:
            raise PaymentRequired(
                "The amount exceeds your available earnings",
                details={"available": str(account["available"])},
                code="insufficient_earnings",
            )
        payout = db.start_payout(
            conn,
            payout_id=uuid.uuid4(),
            user_id=user_id,
            amount=amount,
            stripe_account_id=account["stripe_account_id"],
        )
        return to_out(payout)

    outcome = idempotency.once(
        idempotency.Scope.user(user_id), idempotency_key, body, start, operation="request_payout"
    )
    payout = _current(UUID(outcome.body["id"]))  # a replay answers the payout as it is now
    if payout["status"] == "pending":
        payout = _transfer(credentials.secret_key, payout)
    return to_out(payout), outcome.replayed


def _transfer(secret_key: str | None, payout: dict[str, Any]) -> dict[str, Any]:
    """Asks Stripe for the payout's transfer and records what became of it; returns the payout as it is now."""
    payout_id = payout["id"]
    if secret_key is None:  # only ever locally
        transfer_id = MOCK_TRANSFER_PREFIX + secrets.token_hex(12)
    else:
        import stripe

        try:
            transfer = payments.stripe_client(secret_key).v1.transfers.create(
                params={
                    "amount": int(payout["amount"] * CENTS),
                    "currency": "usd",
                    "destination": payout["stripe_account_id"],
                    "transfer_group": f"payout-{payout_id}",
                    "metadata": {"payoutId": str(payout_id), "userId": str(payout["user_id"])},
                },
                options={"idempotency_key": str(payout_id)},  # every retry of this payout makes the same transfer
            )
            transfer_id = transfer.id
        except (stripe.InvalidRequestError, stripe.CardError, stripe.PermissionError) as exc:
            # Stripe refused: no transfer exists, so the money goes back to available.
            reason = (exc.user_message or type(exc).__name__)[:500]
            logger.warning("Stripe refused a transfer", extra={"payout_id": str(payout_id), "reason": reason})
            with db.transaction() as conn:
                failed = db.fail_payout(conn, payout_id, reason)
                if failed is not None:
                    events.emit(conn, failed["user_id"], events.PAYOUT_FAILED, payout_event(failed))
            return failed or _current(payout_id)
        except stripe.AuthenticationError:
            raise config.misconfigured("Stripe refused the secret key while making a transfer") from None
        except stripe.StripeError as exc:
            # No answer, or an error that says nothing of the transfer: it may exist, so nothing is returned.
            logger.warning("transfer outcome unknown", extra={"payout_id": str(payout_id), "error": type(exc).__name__})
            raise BadGateway(
                "Stripe did not confirm the transfer; the payout stays pending: retry with the same Idempotency-Key",
                details={"payoutId": str(payout_id)},
                code="transfer_pending",
            ) from exc
    with db.transaction() as conn:
        paid = db.complete_payout(conn, payout_id, transfer_id)
        if paid is not None:
            events.emit(conn, paid["user_id"], events.PAYOUT_PAID, payout_event(paid))
    return paid or _current(payout_id)


def retry_pending(older_than_seconds: int = 300, limit: int = 50) -> list[PayoutOut]:
    """Asks Stripe again for the transfers of payouts left pending (for a scheduled run): each makes the same
    transfer as its first attempt would have (same idempotency key), or learns it was refused. Bounded; a payout
    Stripe still does not answer for stays pending for the next run."""
    credentials = config.connect_credentials()
    done = []
    for payout in db.stale_pending_payouts(older_than_seconds, limit):
        try:
            done.append(to_out(_transfer(credentials.secret_key, payout)))
        except BadGateway:
            continue
    return done


def _current(payout_id: UUID) -> dict[str, Any]:
    row = db.payout_by_id(payout_id)
    assert row is not None
    return row


# --- events --------------------------------------------------------------------------------------------


def apply_event(conn: db.Conn, event_type: str, obj: dict[str, Any], *, account: Any = None) -> bool:
    """Applies one verified event inside the caller's transaction (which recorded its id); True if it changed
    something. Fields are read defensively: an odd shape is ignored, never a 500."""
    obj_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    if event_type in DEAUTHORIZED_EVENTS:  # its object is our application; event.account is who left it
        if not isinstance(account, str) or not account:
            return False
        return db.set_payouts_enabled(conn, account, False) is not None
    if event_type in ACCOUNT_EVENTS:
        if obj_id is None or account != obj_id:
            # A Connect event speaks for the connected account it came from (event.account): one account's event
            # about another account's object changes nothing.
            logger.warning("account event from another account", extra={"account": obj_id, "from": str(account)})
            return False
        # payouts_enabled is what makes an owner payable; Stripe may also take it away again
        updated = db.set_payouts_enabled(conn, obj_id, obj.get("payouts_enabled") is True)
        if updated is None:
            logger.warning("account.updated for an account we did not make", extra={"account": obj_id})
        return updated is not None
    payout = _payout_of_transfer(conn, obj_id, as_uuid(payments.mapping(obj.get("metadata")).get("payoutId")))
    if payout is None:
        return False
    # the event proves the transfer exists: it was made
    if payout["status"] == "pending" and obj_id and (paid := db.complete_payout(conn, payout["id"], obj_id)):
        events.emit(conn, paid["user_id"], events.PAYOUT_PAID, payout_event(paid))
    if event_type == "transfer.failed":
        reversed_total = payout["amount"]
    else:
        reversed_total = Decimal(payments.cents(obj.get("amount_reversed"))) / CENTS
    reversed_total = min(reversed_total, payout["amount"])
    returned = reversed_total - payout["amount_returned"]
    if returned <= 0:
        return False
    back = db.return_payout(conn, payout["id"], returned, reversed_total)
    if back is not None and event_type == "transfer.failed":
        events.emit(conn, back["user_id"], events.PAYOUT_FAILED, payout_event(back))
    return back is not None


def payout_event(row: dict[str, Any]) -> dict[str, Any]:
    """A payout event's data (payout.paid, payout.failed)."""
    return {
        "payoutId": row["id"],
        "amount": row["amount"],
        "status": row["status"],
        "amountReturned": row["amount_returned"],
        "stripeTransferId": row["stripe_transfer_id"],
        "failureReason": row["failure_reason"],
    }


def _payout_of_transfer(conn: db.Conn, transfer_id: str | None, payout_id: UUID | None) -> dict[str, Any] | None:
    """The payout a transfer event is about, locked: the one with that transfer, or the one its metadata names
    while that payout has no other transfer. When the two disagree, neither is touched."""
    by_transfer = db.lock_payout(conn, payout_id=None, transfer_id=transfer_id) if transfer_id else None
    named = db.lock_payout(conn, payout_id=payout_id, transfer_id=None) if payout_id else None
    payout = by_transfer or named
    if payout is None:
        logger.warning("transfer event for an unknown payout", extra={"transfer": transfer_id})
        return None
    if named is not None and (named["id"] != payout["id"] or named["stripe_transfer_id"] not in (None, transfer_id)):
        logger.warning(
            "transfer event whose metadata names another payout",
            extra={"transfer": transfer_id, "payout_id": str(payout_id)},
        )
        return None
    return payout


# --- the local mock onboarding -------------------------------------------------------------------------


def mock_account(account_id: str) -> dict[str, Any]:
    """The earnings account behind a mock connected account: only locally, and only without a Stripe key."""
    if not payments.is_mock(account_id, MOCK_ACCOUNT_PREFIX):
        raise NotFound("No such onboarding")
    account = db.account_for_stripe_id(account_id)
    if account is None:
        raise NotFound("No such onboarding")
    return account


def mock_complete_onboarding(account_id: str, webhook_url: str) -> int:
    """Does what Stripe does when an owner finishes onboarding: sends our webhook endpoint (`webhook_url`) an
    `account.updated` with payouts enabled, signed with the Connect webhook secret. Returns the endpoint's status."""
    account = mock_account(account_id)
    account_object = {
        "id": account_id,
        "object": "account",
        "type": "express",
        "charges_enabled": True,
        "payouts_enabled": True,
        "details_submitted": True,
        "capabilities": {"transfers": "active"},
        "metadata": {"userId": str(account["user_id"])},
    }
    secret = config.connect_credentials().connect_webhook_secret
    assert secret is not None
    return payments.send_signed_event(webhook_url, "account.updated", account_object, secret=secret, account=account_id)
