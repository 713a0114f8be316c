"""Balances and the append-only ledger: metered LLM debits, admin adjustments, history."""

import base64
import hashlib
import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from echo_control import db, pricing
from echo_control.errors import BadRequest, Conflict, NotFound, PaymentRequired
from echo_control.identity import Caller, as_uuid
from echo_control.models import (
    DEFAULT_PAGE_SIZE,
    AdjustmentOut,
    BalanceAdjust,
    BalanceOut,
    TransactionCreate,
    TransactionOut,
    TransactionPage,
    TransactionRecorded,
)


def get_balance(user_id: UUID) -> BalanceOut:
    row = db.balance(user_id) or {"balance": 0, "total_paid": 0, "total_spent": 0}
    return BalanceOut(
        user_id=str(user_id),
        balance=row["balance"],
        total_paid=row["total_paid"],
        total_spent=row["total_spent"],
        total_credits=row["balance"] + row["total_spent"],
    )


def list_adjustments(user_id: UUID, limit: int = 20) -> list[AdjustmentOut]:
    return [AdjustmentOut.model_validate(row) for row in db.adjustments_for_user(user_id, limit)]


def adjustments_total(user_id: UUID) -> Decimal:
    """What admins (and the demo's welcome credit) added to the balance, net, beside what was paid."""
    return db.adjustments_total(user_id)


def adjust_balance(body: BalanceAdjust) -> BalanceOut:
    """An admin's credit or debit with a reason; a debit below zero is refused and changes nothing."""
    user_id = as_uuid(body.user_id)
    if user_id is None or db.user_by_id(user_id) is None:
        raise NotFound("User not found")
    amount = body.signed_amount()
    if amount == 0:
        raise BadRequest("amount must not be zero", details={"field": "amount"})
    key = "adjust:" + (body.idempotency_key or str(uuid.uuid4()))
    try:
        with db.transaction() as conn:
            db.apply_entry(
                conn,
                user_id=user_id,
                kind="admin_adjustment",
                amount=amount,
                idempotency_key=key,
                reason=body.reason,
            )
    except psycopg.errors.CheckViolation as exc:
        raise PaymentRequired(
            "The balance cannot go below zero", details={"balance": str(get_balance(user_id).balance)}
        ) from exc
    return get_balance(user_id)


def credit(
    conn: db.Conn,
    user_id: UUID,
    amount: Decimal,
    *,
    kind: str,
    key: str,
    reference_id: UUID | None,
    paid: Decimal,
) -> bool:
    """A payment credit (or, negative, a refund) inside the caller's transaction; False if applied before."""
    row = db.apply_entry(
        conn,
        user_id=user_id,
        kind=kind,
        amount=amount,
        idempotency_key=key,
        reference_id=reference_id,
        paid=paid,
    )
    return row is not None


def available(conn: db.Conn, user_id: UUID) -> Decimal:
    """The balance, locked until the caller's transaction ends."""
    return db.lock_balance(conn, user_id)


def _request_hash(body: TransactionCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _recorded(params: dict[str, Any], row: dict[str, Any]) -> TransactionRecorded:
    transaction = _to_out({**params, **row})
    return TransactionRecorded(**transaction.model_dump(), balance=row["balance"], transaction=transaction)


def price_call(body: TransactionCreate, markup: Decimal) -> pricing.CostSplit:
    """The call's cost split: a client-sent cost is the provider cost; otherwise the provider's price at this time."""
    if body.cost is not None:
        return pricing.CostSplit.of(body.cost, markup)
    tokens = pricing.TokenCounts(
        input=body.input_tokens,
        output=body.output_tokens,
        cache_read=body.cache_read_tokens,
        cache_write=body.cache_write_tokens,
    )
    return pricing.CostSplit.of(pricing.provider_cost(body.model, tokens, body.provider), markup)


def record_transaction(
    who: Caller, body: TransactionCreate, idempotency_key: str | None
) -> tuple[int, dict[str, Any], bool]:
    """Records one LLM call and debits its cost exactly once.

    Returns (status, response body, replayed). Without enough balance nothing is recorded (402)."""
    split = price_call(body, who.app_markup or Decimal(1))
    cost = split.cost
    params = {
        "user_id": who.user_id,
        "echo_app_id": who.echo_app_id,
        "api_key_id": who.api_key_id,
        "model": body.model,
        "provider": body.provider,
        "input_tokens": body.input_tokens,
        "output_tokens": body.output_tokens,
        "cache_read_tokens": body.cache_read_tokens,
        "cache_write_tokens": body.cache_write_tokens,
        "reasoning_tokens": body.reasoning_tokens,
        "total_tokens": body.total_tokens if body.total_tokens is not None else body.input_tokens + body.output_tokens,
        "cost": cost,
        "markup_amount": split.markup_amount,
        "status": body.status,
        "metadata": body.metadata,
    }
    if idempotency_key is None:
        row = db.record_debit(db.connection(), params)
        if row is None:
            raise _insufficient(cost)
        return 201, _recorded(params, row).model_dump(mode="json"), False

    request_hash = _request_hash(body)
    with db.transaction() as conn:
        prior = db.claim_idempotency_key(conn, who.user_id, idempotency_key, request_hash)
        if prior is not None:
            if prior["request_hash"] != request_hash:
                raise Conflict("This Idempotency-Key was used with a different request", code="idempotency_key_reused")
            return prior["status_code"], prior["response"], True
        row = db.record_debit(conn, params)
        if row is None:
            raise _insufficient(cost)  # leaving the block rolls back the claim: a later retry may succeed
        response = _recorded(params, row).model_dump(mode="json")
        db.store_idempotent_response(conn, who.user_id, idempotency_key, 201, response)
    return 201, response, False


def _insufficient(cost: Decimal) -> PaymentRequired:
    return PaymentRequired("Insufficient balance for this call", details={"cost": str(cost)})


# --- history -----------------------------------------------------------------------------------------


def _to_out(row: dict[str, Any]) -> TransactionOut:
    """A transaction row (or a debit's parameters with its row) as the API shows it."""
    return TransactionOut(
        id=str(row["id"]),
        model=row["model"],
        provider=row["provider"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        total_tokens=row["total_tokens"],
        cache_read_tokens=row["cache_read_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        provider_cost=row["cost"] - row["markup_amount"],
        markup_amount=row["markup_amount"],
        cost=row["cost"],
        status=row["status"],
        user_id=str(row["user_id"]),
        echo_app_id=str(row["echo_app_id"]) if row["echo_app_id"] else None,
        metadata=row["metadata"],
        created_at=row["created_at"],
    )


def encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps({"t": row["created_at"].isoformat(), "i": str(row["id"])})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at, ident = datetime.fromisoformat(raw["t"]), UUID(raw["i"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequest("Invalid cursor", details={"field": "cursor"}) from exc
    if at.tzinfo is None:
        raise BadRequest("Invalid cursor", details={"field": "cursor"})
    return at, ident


def list_transactions(
    user_id: UUID,
    *,
    app_scope: UUID | None = None,
    echo_app_id: UUID | None = None,
    model: str | None = None,
    status: str | None = None,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> TransactionPage:
    from echo_control.analytics import instant_of  # analytics builds on this module

    since, until = instant_of(since, end=False), instant_of(until, end=True)
    after_at, after_id = decode_cursor(cursor) if cursor else (None, None)
    rows = db.transactions_page(
        {
            "user_id": user_id,
            "app_scope": app_scope,
            "echo_app_id": echo_app_id,
            "model": model,
            "status": status,
            "since": since,
            "until": until,
            "after_at": after_at,
            "after_id": after_id,
            "limit": limit + 1,  # one more tells whether there is a next page
        }
    )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1]) if len(rows) > limit else None
    return TransactionPage(transactions=[_to_out(r) for r in page], next_cursor=next_cursor)


def app_transactions(app_id: UUID, limit: int) -> list[TransactionOut]:
    rows = db.transactions_page(
        {
            "user_id": None,
            "app_scope": app_id,
            "echo_app_id": None,
            "model": None,
            "status": None,
            "since": None,
            "until": None,
            "after_at": None,
            "after_id": None,
            "limit": limit,
        }
    )
    return [_to_out(r) for r in rows]
