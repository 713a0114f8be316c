"""Users: created on first sight of their clerkId or OpenID Connect identity, found by email or id."""

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


# Found by (issuer, subject); else, when the provider vouches for the email, the account with that email that has
# no provider identity yet takes this one (someone who used the dashboard before its sign-in moved to the provider);
# else created. An unverified email that another account has creates nothing (None).
_USER_BY_OIDC_IDENTITY = """
WITH found AS (
    SELECT id, email, name, role FROM users WHERE oidc_issuer = %(issuer)s AND oidc_subject = %(subject)s
), linked AS (
    UPDATE users SET oidc_issuer = %(issuer)s, oidc_subject = %(subject)s, updated_at = now()
    WHERE %(email_verified)s AND lower(email) = lower(%(email)s) AND oidc_issuer IS NULL
      AND NOT EXISTS (SELECT 1 FROM found)
    RETURNING id, email, name, role
), created AS (
    INSERT INTO users (email, name, oidc_issuer, oidc_subject)
    SELECT %(email)s, %(name)s, %(issuer)s, %(subject)s
    WHERE NOT EXISTS (SELECT 1 FROM found) AND NOT EXISTS (SELECT 1 FROM linked)
    ON CONFLICT DO NOTHING
    RETURNING id, email, name, role
), balance AS (
    INSERT INTO balances (user_id) SELECT id FROM created
)
SELECT * FROM found UNION ALL SELECT * FROM linked UNION ALL SELECT * FROM created
"""


def user_for_oidc_identity(issuer: str, subject: str, email: str, name: str | None, email_verified: bool) -> Row | None:
    """The user an OpenID Connect provider's (issuer, sub) names, linked or created (with an empty balance) on first
    sight; None when the email belongs to another account and the provider does not vouch for it."""
    params = {"issuer": issuer, "subject": subject, "email": email, "name": name, "email_verified": email_verified}
    with transaction() as conn:
        row = conn.execute(_USER_BY_OIDC_IDENTITY, params).fetchone()
    if row is None:  # lost a race with a concurrent first sight, or the email belongs to another account
        row = (
            connection()
            .execute(
                "SELECT id, email, name, role FROM users WHERE oidc_issuer = %s AND oidc_subject = %s",
                [issuer, subject],
            )
            .fetchone()
        )
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
