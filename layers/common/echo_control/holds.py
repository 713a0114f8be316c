"""Holds: reserve what a streaming or long call may cost, then settle it with the real usage.

`available = balance - active holds` never goes below zero: every debit and hold is taken in one statement
under the balance row's lock (db.LOCK_FUNDS). A hold past its expiresAt stops counting at once, without waiting
for the housekeeping sweep, and can no longer be settled.
"""

from decimal import Decimal
from typing import Any
from uuid import UUID

from echo_control import config, db, idempotency, ledger, pricing
from echo_control.errors import Conflict, NotFound
from echo_control.identity import Caller, as_uuid
from echo_control.models import (
    HoldCreate,
    HoldCreated,
    HoldOut,
    HoldReleased,
    HoldSettled,
    TransactionCreate,
)

SWEEP_BATCH = 5000


def _amount(who: Caller, body: HoldCreate) -> Decimal:
    """What the hold reserves: the amount given, or the most the call may cost, at the app's own price for the
    model if it has one (a model the app does not allow is refused), with the app's markup."""
    if body.amount is not None:
        return body.amount
    assert body.model is not None and body.max_input_tokens is not None and body.max_output_tokens is not None
    tokens = pricing.TokenCounts(input=body.max_input_tokens, output=body.max_output_tokens)
    own = ledger.app_prices_for(who, body.model)
    provider_cost = own.cost(tokens) if own else pricing.provider_cost(body.model, tokens, body.provider)
    return pricing.CostSplit.of(provider_cost, who.app_markup or Decimal(1)).cost


def _out(row: dict[str, Any]) -> HoldOut:
    status = "expired" if row.get("lapsed") else row["status"]
    return HoldOut(
        id=str(row["id"]),
        amount=row["amount"],
        status=status,
        expires_at=row["expires_at"],
        echo_app_id=str(row["echo_app_id"]),
        api_key_id=str(row["api_key_id"]),
        created_at=row["created_at"],
        closed_at=row["closed_at"],
    )


def _key_parts(who: Caller) -> tuple[UUID, UUID]:
    assert who.echo_app_id is not None and who.api_key_id is not None  # holds are an API key's
    return who.echo_app_id, who.api_key_id


def create_hold(who: Caller, body: HoldCreate, idempotency_key: str | None) -> idempotency.Outcome:
    """Reserves the hold's amount (201), or refuses it (402) changing nothing; a retry under its key replays it."""
    app_id, key_id = _key_parts(who)
    amount = _amount(who, body)
    params = {
        "user_id": who.user_id,
        "echo_app_id": app_id,
        "api_key_id": key_id,
        "amount": amount,
        "ttl_seconds": body.ttl_seconds,
    }

    def reserve(conn: db.Conn) -> HoldCreated:
        row = db.create_hold(conn, params)
        if problem := ledger.refused(row, amount):
            raise problem  # rolls the claim back: a retry may succeed once money arrives
        assert row is not None
        return _created(row)

    return idempotency.once(
        idempotency.Scope.of_caller(who),
        idempotency_key,
        body,
        reserve,
        operation="create_hold",
        single_statement=True,
    )


def _created(row: dict[str, Any]) -> HoldCreated:
    return HoldCreated(**_out(row).model_dump(), available=row["available"])


def _find(who: Caller, hold_id: str, conn: db.Conn | None = None) -> dict[str, Any]:
    app_id, _ = _key_parts(who)
    ident = as_uuid(hold_id)
    row = db.hold(ident, who.user_id, app_id, conn) if ident else None
    if row is None:
        raise NotFound("Hold not found")
    return row


def get_hold(who: Caller, hold_id: str) -> HoldOut:
    return _out(_find(who, hold_id))


def release_hold(who: Caller, hold_id: str) -> HoldReleased:
    """Releases an active hold; releasing again answers its status. A settled hold cannot be released (409)."""
    row = _find(who, hold_id)
    with db.transaction() as conn:
        status = db.release_hold(conn, row["id"], who.user_id, row["echo_app_id"])
        if status is None:
            row = _find(who, hold_id, conn)
            if row["status"] == "settled":
                raise Conflict("This hold was settled", code="hold_settled", details={"status": "settled"})
            return HoldReleased(id=str(row["id"]), status=row["status"])
    return HoldReleased(id=str(row["id"]), status=status["status"])


def settle_hold(who: Caller, hold_id: str, body: TransactionCreate) -> idempotency.Outcome:
    """Records the call against the hold: its real cost is taken, the rest released. A hold settles once: the same
    body again replays the first answer; another body, or a hold released or past its time, is 409."""
    row = _find(who, hold_id)
    split = ledger.price_call(body, who.app_markup or Decimal(1), ledger.app_prices_for(who, body.model))
    params = {
        **ledger.call_params(who, body),
        "hold_id": row["id"],
        "echo_app_id": row["echo_app_id"],
        "api_key_id": row["api_key_id"],
        "cost": split.cost,
        "markup_amount": split.markup_amount,
        "clearing_days": config.settings().earnings_clearing_days,
    }

    def settle(conn: db.Conn) -> HoldSettled:
        # A concurrent settle of the same hold waits on its claim, then replays or is refused.
        settled = db.settle_hold(conn, params)
        if settled is None:
            raise _not_settled(_find(who, hold_id, conn))
        transaction = ledger.to_out({**params, **settled})
        return HoldSettled(
            **transaction.model_dump(),
            balance=settled["balance"],
            available=settled["available"],
            transaction=transaction,
            overrun=settled["overrun"],
            shortfall=settled["shortfall"],
            hold_id=str(row["id"]),
        )

    settled_otherwise = Conflict(
        "This hold was settled with another request", code="hold_settled", details={"status": "settled"}
    )
    return idempotency.once(
        idempotency.Scope.hold(row["id"]), "settle", body, settle, operation="settle_hold", reused=settled_otherwise
    )


def _not_settled(row: dict[str, Any]) -> Conflict:
    status = "expired" if row["lapsed"] else row["status"]
    return Conflict(
        f"This hold is {status} and can no longer be settled", code=f"hold_{status}", details={"status": status}
    )


def sweep_lapsed_holds(limit: int = SWEEP_BATCH) -> int:
    """Marks holds past their time expired (they already stopped counting); a bounded batch per run, idempotent.
    Returns how many it expired (0 when another sweep was running)."""
    with db.transaction() as conn:
        return db.sweep_lapsed_holds(conn, limit) or 0
