"""Credit codes: admins make promotional grants; users redeem them once each, never past maxUses in all.

A redemption credits a grant lot (statement kind `grant_credit`) that calls take first and that stops counting
`creditDays` after redemption (never, without creditDays). Grants never earn app owners their markup."""

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from echo_control import db, ledger
from echo_control.errors import Conflict, EchoError, NotFound
from echo_control.models import CreditCodeCreate, CreditCodeList, CreditCodeOut, CreditCodeRedeemed

LIST_LIMIT = 200
# Readable when spoken or typed: no 0/O, 1/I.
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class Gone(EchoError):
    status, code = 410, "gone"


def _out(row: dict[str, Any]) -> CreditCodeOut:
    return CreditCodeOut(
        id=str(row["id"]),
        code=row["code"],
        amount=row["amount"],
        max_uses=row["max_uses"],
        uses=row["uses"],
        expires_at=row["expires_at"],
        credit_days=row["credit_days"],
        created_at=row["created_at"],
    )


def create_code(admin_id: UUID, body: CreditCodeCreate) -> CreditCodeOut:
    code = "-".join("".join(secrets.choice(ALPHABET) for _ in range(4)) for _ in range(3))
    row = db.insert_credit_code(code, body.amount, body.max_uses, body.expires_at, body.credit_days, admin_id)
    return _out(row)


def list_codes() -> CreditCodeList:
    return CreditCodeList(codes=[_out(r) for r in db.credit_codes(LIST_LIMIT)])


def redeem(user_id: UUID, code: str) -> CreditCodeRedeemed:
    """Grants the code's amount to the user once: 404 code_not_found, 409 code_already_redeemed, 410 code_exhausted
    or code_expired, and nothing changes."""
    with db.transaction() as conn:
        row = db.take_code_use(conn, code.strip().upper(), user_id)
        if row is None:
            raise NotFound("No such credit code", code="code_not_found")
        if row["taken"] is None:
            if row["redeemed"]:
                raise Conflict("You have redeemed this code already", code="code_already_redeemed")
            if row["expired"]:
                raise Gone("This code has expired", code="code_expired")
            raise Gone("This code has been used up", code="code_exhausted")
        expires_at = datetime.now(UTC) + timedelta(days=row["credit_days"]) if row["credit_days"] else None
        credited = db.apply_entry(
            conn,
            user_id=user_id,
            kind="grant_credit",
            amount=row["amount"],
            idempotency_key=f"grant:{row['id']}:{user_id}",
            reference_id=row["id"],
            reason=f"Credit code {row['code']}",
            source="grant",
            expires_at=expires_at,
        )
        assert credited is not None
        if credited["repaid"] > 0:  # a grant pays debt first; it earns nobody anything
            ledger.repay_debt(conn, user_id, credited, cash=False)
        db.record_redemption(conn, row["id"], user_id, credited["lot_id"])
    return CreditCodeRedeemed(amount=row["amount"], expires_at=expires_at, balance=ledger.get_balance(user_id))
