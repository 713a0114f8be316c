"""Balances and the append-only ledger: metered LLM debits, admin adjustments, history."""

import base64
import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import psycopg

from echo_control import config, db, idempotency, pricing
from echo_control.errors import BadRequest, Forbidden, NotFound, PaymentRequired, Unprocessable
from echo_control.identity import Caller, as_uuid
from echo_control.models import (
    DEFAULT_PAGE_SIZE,
    MAX_COST,
    AdjustmentOut,
    BalanceAdjust,
    BalanceOut,
    LedgerEntryOut,
    LedgerPage,
    LotOut,
    TransactionCreate,
    TransactionOut,
    TransactionPage,
    TransactionRecorded,
)

MICRO = Decimal("0.000001")
ZERO = Decimal("0.000000")


def money(amount: Decimal) -> Decimal:
    """USD to the micro-dollar, as every amount is stored and shown."""
    return amount.quantize(MICRO)


def get_balance(user_id: UUID, *, with_lots: bool = True) -> BalanceOut:
    """The balance without what grants past their expiresAt still held (they stopped counting at once), what is
    held, available and spendable, the debt, and the lots with something left."""
    row = db.balance(user_id) or {"balance": ZERO, "total_paid": ZERO, "total_spent": ZERO, "held": ZERO}
    balance = row["balance"] - row.get("expired", ZERO)
    available = balance - row["held"]
    lots = [
        LotOut(
            id=str(lot["id"]),
            source=lot["source"],
            cash=lot["cash"],
            amount=lot["amount"],
            remaining=lot["remaining"],
            expires_at=lot["expires_at"],
        )
        for lot in (db.lots(user_id) if with_lots else [])
        if not lot["expired"]
    ]
    return BalanceOut(
        user_id=str(user_id),
        balance=money(balance),
        total_paid=row["total_paid"],
        total_spent=row["total_spent"],
        total_credits=money(balance + row["total_spent"]),
        held=row["held"],
        available=money(available),
        spendable=money(max(available, ZERO)),
        debt=row.get("debt", ZERO),
        lots=lots,
    )


def list_adjustments(user_id: UUID, limit: int = 20) -> list[AdjustmentOut]:
    return [AdjustmentOut.model_validate(row) for row in db.adjustments_for_user(user_id, limit)]


def adjustments_total(user_id: UUID) -> Decimal:
    """What admins (and the demo's welcome credit) added to the balance, net, beside what was paid."""
    return db.adjustments_total(user_id)


def adjust_balance(body: BalanceAdjust) -> idempotency.Outcome:
    """An admin's credit or debit with a reason; a debit below zero is refused and changes nothing. The body's
    idempotencyKey is the target user's: the same adjustment again replays its answer, another one is 409."""
    user_id = as_uuid(body.user_id)
    if user_id is None or db.user_by_id(user_id) is None:
        raise NotFound("User not found")
    amount = body.signed_amount()
    if amount == 0:
        raise BadRequest("amount must not be zero", details={"field": "amount"})

    def adjust(conn: db.Conn) -> BalanceOut:
        if amount < 0 and db.lock_funds(conn, user_id) + amount < 0:
            raise PaymentRequired(  # money held for calls in flight, or owed, is not the admin's to take
                "The balance less what is held cannot go below zero",
                details={"available": str(db.lock_funds(conn, user_id))},
            )
        row = db.apply_entry(
            conn,
            user_id=user_id,
            kind="admin_adjustment",
            amount=amount,
            idempotency_key=f"adjust:{uuid4()}",  # each adjustment is its own entry; retries are told apart above
            reason=body.reason,
            source="adjustment",
            cash=body.cash,
        )
        if row is not None and row["repaid"] > 0:
            repay_debt(conn, user_id, row, cash=body.cash)
        return get_balance(user_id)  # read in this transaction: the same connection

    request = body.model_copy(update={"idempotency_key": None, "amount": amount, "operation": None})
    try:
        return idempotency.once(
            idempotency.Scope.adjusted_user(user_id),
            body.idempotency_key,
            request,
            adjust,
            operation="adjust_balance",
        )
    except psycopg.errors.CheckViolation as exc:
        raise PaymentRequired(
            "The balance cannot go below zero", details={"balance": str(get_balance(user_id).balance)}
        ) from exc


def credit(
    conn: db.Conn,
    user_id: UUID,
    amount: Decimal,
    *,
    kind: str,
    key: str,
    reference_id: UUID | None,
    paid: Decimal,
    cash: bool = False,
    payment_id: UUID | None = None,
) -> bool:
    """A credit (a lot: a payment's when `payment_id` is given, else an adjustment, `cash` when it is money
    received) inside the caller's transaction, paying any debt first; False if applied before."""
    row = db.apply_entry(
        conn,
        user_id=user_id,
        kind=kind,
        amount=amount,
        idempotency_key=key,
        reference_id=reference_id,
        paid=paid,
        source="payment" if payment_id else "adjustment",
        cash=cash,
        payment_id=payment_id,
    )
    if row is not None and row["repaid"] > 0:
        repay_debt(conn, user_id, row, cash=cash or payment_id is not None)
    return row is not None


def repay_debt(conn: db.Conn, user_id: UUID, credited: dict[str, Any], *, cash: bool) -> None:
    """A credit paid debt first: the calls that owed it are repaid, and paid in cash they earn their markup."""
    clearing_days = config.settings().earnings_clearing_days
    db.repay_debt(conn, user_id, credited["repaid"], lot_id=credited["lot_id"], cash=cash, clearing_days=clearing_days)


def take_back(
    conn: db.Conn, payment: dict[str, Any], wanted: Decimal, *, kind: str, key: str, spent_becomes_debt: bool
) -> tuple[Decimal, Decimal]:
    """Takes back up to `wanted` of a payment's credits (a refund or a dispute), inside the caller's transaction:
    what is left of its lot, held credits included (the user's holds lose what is no longer there), and the
    earnings that the rest, already spent, paid app owners. With `spent_becomes_debt` (a dispute) that rest becomes
    the user's debt (their other credits pay it first). Returns (what the lot gave back, the debt it made)."""
    user_id = payment["user_id"]
    db.lock_active_holds(conn, user_id)
    db.lock_funds(conn, user_id)
    lot = db.payment_lot(conn, payment["id"])
    if lot is None or wanted <= 0:
        return Decimal(0), Decimal(0)
    unspent = min(wanted, lot["remaining"])
    debt = wanted - unspent if spent_becomes_debt else Decimal(0)
    if unspent + debt > 0:
        db.apply_entry(
            conn,
            user_id=user_id,
            kind=kind,
            amount=-(unspent + debt),
            idempotency_key=key,
            reference_id=payment["id"],
            paid=-(unspent + debt),
            lot_id=lot["id"],
            debt_added=debt,
        )
    db.reverse_earnings(conn, lot, wanted - unspent, key)
    if debt > 0:
        db.net_debt(conn, user_id)
    db.shrink_holds(conn, user_id)
    return unspent, debt


def give_back(conn: db.Conn, payment: dict[str, Any], amount: Decimal, *, kind: str, key: str) -> None:
    """Credits `amount` back to a payment's lot (a dispute won), paying any debt first."""
    lot = db.payment_lot(conn, payment["id"])
    if lot is not None and amount > 0:
        db.credit_lot(
            conn,
            user_id=payment["user_id"],
            lot_id=lot["id"],
            kind=kind,
            amount=amount,
            key=key,
            reference_id=payment["id"],
        )


def available(conn: db.Conn, user_id: UUID) -> Decimal:
    """The balance less active holds, locked until the caller's transaction ends."""
    return db.lock_funds(conn, user_id)


def _recorded(params: dict[str, Any], row: dict[str, Any]) -> TransactionRecorded:
    transaction = to_out({**params, **row})
    return TransactionRecorded(
        **transaction.model_dump(),
        balance=row["balance"],
        available=row["available"],
        shortfall=row["shortfall"],
        transaction=transaction,
    )


def refused(verdict: dict[str, Any] | None, amount: Decimal) -> PaymentRequired | None:
    """Why a debit or a hold of `amount` took nothing (402), from its statement's verdict; None when it took it."""
    if verdict is not None and verdict.get("id") is not None:
        return None
    if verdict is not None and verdict["within_limit"] is False:
        return PaymentRequired(
            "This API key's spend limit does not allow it", code="key_limit_exceeded", details={"cost": str(amount)}
        )
    if verdict is None or not verdict["funded"]:
        available = verdict["available_before"] if verdict else Decimal(0)
        return PaymentRequired(
            "Insufficient balance for this call", details={"cost": str(amount), "available": str(available)}
        )
    return None


def price_call(
    body: TransactionCreate, markup: Decimal, prices: pricing.TokenPrices | None = None
) -> pricing.CostSplit:
    """The call's cost split. Its provider cost is the app's own price for the model if it has one, else the
    client-sent cost, else the provider's price at this time; the app's markup comes on top."""
    tokens = pricing.TokenCounts(
        input=body.input_tokens,
        output=body.output_tokens,
        cache_read=body.cache_read_tokens,
        cache_write=body.cache_write_tokens,
    )
    if prices is not None:
        provider_cost = prices.cost(tokens)
    elif body.cost is not None:
        provider_cost = body.cost
    else:
        provider_cost = pricing.provider_cost(body.model, tokens, body.provider)
    split = pricing.CostSplit.of(provider_cost, markup)
    if split.cost > MAX_COST:
        raise Unprocessable(
            f"This call would cost {split.cost} USD, more than one call may cost ({MAX_COST})",
            details={"cost": str(split.cost)},
            code="cost_too_large",
        )
    return split


# An app's own prices as this function last loaded them, by app; a key lookup that reads a newer version than the
# one kept here loads them again, so a change applies from the next call on. Bounded: cleared when full.
_APP_RULES: dict[UUID, pricing.AppRules] = {}
APP_RULES_KEPT = 1000


def _app_rules(app_id: UUID, version: int | None, conn: db.Conn | None) -> pricing.AppRules | None:
    kept = _APP_RULES.get(app_id)
    if kept is not None and version is not None and kept.version >= version:
        return kept
    row = db.price_rules(app_id, conn)
    if row is None:
        return None
    prices = zip(row["inputs"], row["outputs"], row["cache_reads"], row["cache_writes"], strict=False)
    rules = pricing.AppRules(
        version=row["version"],
        allowed=None if row["allowed_model_keys"] is None else frozenset(row["allowed_model_keys"]),
        overrides={key: pricing.TokenPrices(*p) for key, p in zip(row["model_keys"], prices, strict=False)},
    )
    if len(_APP_RULES) >= APP_RULES_KEPT:
        _APP_RULES.clear()
    _APP_RULES[app_id] = rules
    return rules


def app_prices_for(who: Caller, model: str, conn: db.Conn | None = None) -> pricing.TokenPrices | None:
    """The app's own price for the call's model, if it has one; a model the app does not allow is refused (403).

    An app that never had prices of its own costs nothing here (the key lookup says so); one that has them costs a
    query when they changed since this function last loaded them."""
    if who.echo_app_id is None or who.app_prices_version == 0:
        return None
    rules = _app_rules(who.echo_app_id, who.app_prices_version, conn)
    if rules is None:
        return None
    key = pricing.model_key(model)
    if not rules.allows(key):
        raise Forbidden(
            f"This app does not allow the model '{model}'",
            details={"field": "model", "model": model},
            code="model_not_allowed",
        )
    return rules.overrides.get(key)


def _debit_params(who: Caller, body: TransactionCreate, conn: db.Conn | None = None) -> dict[str, Any]:
    split = price_call(body, who.app_markup or Decimal(1), app_prices_for(who, body.model, conn))
    return {
        **call_params(who, body),
        "cost": split.cost,
        "markup_amount": split.markup_amount,
        "require_funds": body.require_funds,
        "clearing_days": config.settings().earnings_clearing_days,
    }


def call_params(who: Caller, body: TransactionCreate) -> dict[str, Any]:
    """The statement parameters that describe a call (its cost is added by who takes it)."""
    return {
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
        "status": body.status,
        "metadata": body.metadata,
    }


def record_transaction(who: Caller, body: TransactionCreate, idempotency_key: str | None) -> idempotency.Outcome:
    """Records one LLM call and debits its cost exactly once (201; a retry under its Idempotency-Key replays it).

    A call that happened is recorded even when what is available or the key's limit does not cover it
    (`shortfall`; the rest becomes debt); with requireFunds nothing is recorded then (402). Nothing is recorded for
    a model the app does not allow (403), or one nobody can price (422)."""

    def debit(conn: db.Conn) -> TransactionRecorded:
        # Priced inside the claim: a retry replays what was recorded, even if the app's prices changed since.
        params = _debit_params(who, body, conn)
        row = db.record_debit(conn, params)
        if problem := refused(row, params["cost"]):
            raise problem  # leaving the transaction rolls the claim back: a later retry may succeed
        assert row is not None
        return _recorded(params, row)

    return idempotency.once(
        idempotency.Scope.of_caller(who),
        idempotency_key,
        body,
        debit,
        operation="record_transaction",
        single_statement=True,
    )


# --- history -----------------------------------------------------------------------------------------


def to_out(row: dict[str, Any]) -> TransactionOut:
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
        earned_amount=row.get("earned_amount", ZERO),
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
    return TransactionPage(transactions=[to_out(r) for r in page], next_cursor=next_cursor)


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
    return [to_out(r) for r in rows]


# --- the statement -----------------------------------------------------------------------------------

STATEMENT_COLUMNS = ["id", "createdAt", "kind", "amount", "balanceAfter", "reason", "referenceId"]


def statement(user_id: UUID, cursor: str | None = None, limit: int = DEFAULT_PAGE_SIZE) -> LedgerPage:
    """Every balance entry of the user, newest first, with the balance after it; the cursor is the last id."""
    before: int | None = None
    if cursor is not None:
        if not cursor.isdigit() or len(cursor) > 18:
            raise BadRequest("Invalid cursor", details={"field": "cursor"})
        before = int(cursor)
    rows = db.ledger_page(user_id, before, limit + 1)
    page = rows[:limit]
    entries = [
        LedgerEntryOut(
            id=str(row["id"]),
            kind=row["kind"],
            amount=row["amount"],
            balance_after=row["balance_after"],
            reason=row["reason"],
            reference_id=str(row["reference_id"]) if row["reference_id"] else None,
            created_at=row["created_at"],
        )
        for row in page
    ]
    return LedgerPage(entries=entries, next_cursor=str(page[-1]["id"]) if len(rows) > limit else None)


def statement_csv(page: LedgerPage) -> str:
    from echo_control.analytics import spreadsheet_safe  # analytics builds on this module

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(STATEMENT_COLUMNS)
    for entry in page.entries:  # amounts stay numbers (a negative one is not a formula); text is made inert
        writer.writerow(
            [
                entry.id,
                entry.created_at.isoformat(),
                entry.kind,
                entry.amount,
                entry.balance_after,
                spreadsheet_safe(entry.reason or ""),
                entry.reference_id or "",
            ]
        )
    return out.getvalue()
