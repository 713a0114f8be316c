"""Credit codes: promotional grants, each redeemable once per user and at most max_uses times in all."""

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from echo_control.db.connection import Conn, Row, connection, transaction

_CODE_COLUMNS = "id, code, amount, max_uses, uses, expires_at, credit_days, created_at"


def insert_credit_code(
    code: str, amount: Decimal, max_uses: int, expires_at: datetime | None, credit_days: int | None, created_by: UUID
) -> Row:
    with transaction() as conn:
        row = conn.execute(
            "INSERT INTO credit_codes (code, amount, max_uses, expires_at, credit_days, created_by) "
            f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_CODE_COLUMNS}",
            [code, amount, max_uses, expires_at, credit_days, created_by],
        ).fetchone()
    assert row is not None
    return row


def credit_codes(limit: int) -> list[Row]:
    return (
        connection()
        .execute(f"SELECT {_CODE_COLUMNS} FROM credit_codes ORDER BY created_at DESC, id DESC LIMIT %s", [limit])
        .fetchall()
    )


# Takes one use of the code for the user, or says why not: the row's lock orders concurrent redemptions, so uses
# never passes max_uses, and the (code, user) key allows one per user. The caller credits the grant in the same
# transaction and records the redemption with its lot.
_TAKE_USE = f"""
WITH code AS (
    SELECT {_CODE_COLUMNS}, expires_at <= now() IS TRUE AS expired,
           EXISTS (SELECT 1 FROM credit_code_redemptions r WHERE r.code_id = c.id AND r.user_id = %(user_id)s)
               AS redeemed
    FROM credit_codes c WHERE code = %(code)s
    FOR UPDATE
), used AS (
    UPDATE credit_codes c SET uses = c.uses + 1
    FROM code WHERE c.id = code.id AND NOT code.expired AND NOT code.redeemed AND code.uses < code.max_uses
    RETURNING c.uses
)
SELECT code.*, (SELECT uses FROM used) AS taken FROM code
"""


def take_code_use(conn: Conn, code: str, user_id: UUID) -> Row | None:
    """The code (None when there is none) with `taken` set when this user got one of its uses."""
    return conn.execute(_TAKE_USE, {"code": code, "user_id": user_id}).fetchone()


def record_redemption(conn: Conn, code_id: UUID, user_id: UUID, lot_id: int) -> None:
    conn.execute(
        "INSERT INTO credit_code_redemptions (code_id, user_id, lot_id) VALUES (%s, %s, %s)",
        [code_id, user_id, lot_id],
    )
