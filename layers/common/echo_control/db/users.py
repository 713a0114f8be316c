"""Users: created on first sight of their clerkId, found by email or id."""

from uuid import UUID

from echo_control.db.connection import Row, connection, transaction

_USER_BY_CLERK_ID = """
WITH found AS (
    SELECT id, email, name, role FROM users WHERE clerk_id = %(clerk_id)s
), created AS (
    INSERT INTO users (email, clerk_id, name)
    SELECT %(email)s, %(clerk_id)s, %(name)s WHERE NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT DO NOTHING
    RETURNING id, email, name, role
), balance AS (
    INSERT INTO balances (user_id) SELECT id FROM created
)
SELECT * FROM found UNION ALL SELECT * FROM created
"""


def user_for_clerk_id(clerk_id: str, email: str, name: str | None) -> Row | None:
    """The user with this clerkId, created (with an empty balance) on first sight."""
    params = {"clerk_id": clerk_id, "email": email, "name": name}
    conn = connection()
    row = conn.execute(_USER_BY_CLERK_ID, params).fetchone()
    if row is None:  # lost a race with a concurrent first sight, or the email belongs to another user
        row = conn.execute("SELECT id, email, name, role FROM users WHERE clerk_id = %s", [clerk_id]).fetchone()
    return row


def user_by_email(email: str) -> Row | None:
    return (
        connection()
        .execute("SELECT id, email, clerk_id, role FROM users WHERE lower(email) = lower(%s)", [email])
        .fetchone()
    )


def set_user_clerk_id(user_id: UUID, clerk_id: str) -> None:
    with transaction() as conn:
        conn.execute("UPDATE users SET clerk_id = %s, updated_at = now() WHERE id = %s", [clerk_id, user_id])


def user_by_id(user_id: UUID) -> Row | None:
    return connection().execute("SELECT id, email, name, role FROM users WHERE id = %s", [user_id]).fetchone()
