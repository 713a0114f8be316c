"""Idempotency-Key records: claimed inside the transaction of the write they guard, answered from after it."""

from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from echo_control.db.connection import Conn, Row

_CLAIM = """
INSERT INTO idempotency_keys (scope_kind, scope_id, key, operation, request_hash)
VALUES (%(kind)s, %(id)s, %(key)s, %(operation)s, %(hash)s)
ON CONFLICT DO NOTHING
RETURNING key
"""

_PRIOR = """
SELECT operation, request_hash, response FROM idempotency_keys
WHERE scope_kind = %(kind)s AND scope_id = %(id)s AND key = %(key)s
"""


def claim_idempotency_key(
    conn: Conn, kind: str, scope_id: UUID, key: str, operation: str, request_hash: str
) -> Row | None:
    """Claims the key inside the caller's transaction; a concurrent claimant waits on the row until that ends.

    Returns None when this transaction owns the key, else the earlier request's record (operation, hash, answer)."""
    params = {"kind": kind, "id": scope_id, "key": key, "operation": operation, "hash": request_hash}
    if conn.execute(_CLAIM, params).fetchone():
        return None
    return conn.execute(_PRIOR, params).fetchone()


def store_idempotent_response(conn: Conn, kind: str, scope_id: UUID, key: str, response: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE idempotency_keys SET response = %(response)s "
        "WHERE scope_kind = %(kind)s AND scope_id = %(id)s AND key = %(key)s",
        {"response": Jsonb(response), "kind": kind, "id": scope_id, "key": key},
    )
