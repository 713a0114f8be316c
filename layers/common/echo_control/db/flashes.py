"""Page flashes: encrypted one-time messages between a form post and the page after it."""

from uuid import UUID

from echo_control.db.connection import connection

# Unread flashes are few and short-lived; each write sweeps a bounded batch of expired ones.
_SWEEP = "DELETE FROM page_flashes WHERE id IN (SELECT id FROM page_flashes WHERE expires_at < now() LIMIT 100)"


def insert_flash(flash_id: UUID, ciphertext: bytes, seconds: int) -> None:
    conn = connection()
    conn.execute(_SWEEP)
    conn.execute(
        "INSERT INTO page_flashes (id, ciphertext, expires_at) VALUES (%s, %s, now() + make_interval(secs => %s))",
        [flash_id, ciphertext, seconds],
    )


def take_flash(flash_id: UUID) -> bytes | None:
    """The flash's ciphertext, deleted as it is read (so it is shown once), or None if gone or expired."""
    row = (
        connection()
        .execute("DELETE FROM page_flashes WHERE id = %s RETURNING ciphertext, expires_at > now() AS live", [flash_id])
        .fetchone()
    )
    return bytes(row["ciphertext"]) if row and row["live"] else None
