"""Customers: users other than its owner who hold keys for an app open to customers (a row at their first key)."""

from uuid import UUID

from echo_control.db.connection import Conn, Row, connection

# The app as this user relates to it: 'owner', 'customer' (a member already), 'open' (not yet a customer, but the
# app accepts customers and is active), or no row at all (another user's closed app, or no such app).
_APP_FOR_USER = """
SELECT a.id, a.name, a.description, a.user_id, a.markup, a.is_active, a.accepts_customers, a.redirect_uris,
       a.created_at, a.updated_at,
       CASE WHEN a.user_id = %(user_id)s THEN 'owner'
            WHEN c.user_id IS NOT NULL THEN 'customer'
            ELSE 'open' END AS relation
FROM echo_apps a LEFT JOIN app_customers c ON c.echo_app_id = a.id AND c.user_id = %(user_id)s
WHERE a.id = %(app_id)s
  AND (a.user_id = %(user_id)s OR c.user_id IS NOT NULL OR (a.accepts_customers AND a.is_active))
"""


def app_for_user(app_id: UUID, user_id: UUID) -> Row | None:
    return connection().execute(_APP_FOR_USER, {"app_id": app_id, "user_id": user_id}).fetchone()


_OPEN_APP_NAME = "SELECT name FROM echo_apps WHERE id = %(app_id)s AND accepts_customers AND is_active"


def open_app_name(app_id: UUID) -> str | None:
    """The name of an app anyone may join (what its join link shows before sign-in), or None."""
    row = connection().execute(_OPEN_APP_NAME, {"app_id": app_id}).fetchone()
    return row["name"] if row else None


# Makes the user a customer if the app (not theirs) accepts customers right now; an existing customer stays one.
_JOIN_APP = """
INSERT INTO app_customers (echo_app_id, user_id)
SELECT a.id, %(user_id)s FROM echo_apps a
WHERE a.id = %(app_id)s AND a.user_id <> %(user_id)s AND a.accepts_customers AND a.is_active
ON CONFLICT DO NOTHING
RETURNING echo_app_id, user_id, first_seen, (SELECT email FROM users WHERE id = %(user_id)s) AS email
"""
_IS_CUSTOMER = "SELECT 1 FROM app_customers WHERE echo_app_id = %(app_id)s AND user_id = %(user_id)s"


def join_app(conn: Conn, app_id: UUID, user_id: UUID) -> tuple[bool, Row | None]:
    """Within the caller's transaction: whether the user is (now) the app's customer, and the customer row when
    this call made them one."""
    params = {"app_id": app_id, "user_id": user_id}
    joined = conn.execute(_JOIN_APP, params).fetchone()
    if joined is not None:
        return True, joined
    return conn.execute(_IS_CUSTOMER, params).fetchone() is not None, None


_CUSTOMERS = """
SELECT c.user_id, u.email, c.first_seen,
       COALESCE(s.calls, 0) AS calls, COALESCE(s.spent, 0)::numeric(18, 6) AS spent
FROM app_customers c
JOIN users u ON u.id = c.user_id
CROSS JOIN LATERAL (
    SELECT sum(d.calls) AS calls, sum(d.cost) AS spent FROM usage_daily d
    WHERE d.user_id = c.user_id AND d.echo_app_id = c.echo_app_id
) s
WHERE c.echo_app_id = %(app_id)s
ORDER BY c.first_seen DESC, c.user_id
LIMIT %(limit)s
"""


def customers_of_app(app_id: UUID, limit: int) -> list[Row]:
    """The app's customers, newest first, with their calls and spend on it (from the daily rollups)."""
    return connection().execute(_CUSTOMERS, {"app_id": app_id, "limit": limit}).fetchall()


_APPS_USED = """
SELECT a.id, a.name, a.description, a.markup, a.is_active, c.first_seen,
       COALESCE(s.calls, 0) AS calls, COALESCE(s.spent, 0)::numeric(18, 6) AS spent
FROM app_customers c
JOIN echo_apps a ON a.id = c.echo_app_id
CROSS JOIN LATERAL (
    SELECT sum(d.calls) AS calls, sum(d.cost) AS spent FROM usage_daily d
    WHERE d.user_id = c.user_id AND d.echo_app_id = c.echo_app_id
) s
WHERE c.user_id = %(user_id)s
ORDER BY c.first_seen DESC, a.id
"""


def apps_used_by(user_id: UUID) -> list[Row]:
    """The apps this user is a customer of, with their own calls and spend on each."""
    return connection().execute(_APPS_USED, {"user_id": user_id}).fetchall()
