"""Echo apps and their usage totals (from the daily rollups)."""

from decimal import Decimal
from typing import Any
from uuid import UUID

from echo_control.db.connection import Row, connection, transaction

_APP_COLUMNS = (
    "a.id, a.name, a.description, a.user_id, a.markup, a.is_active, a.accepts_customers, a.redirect_uris, "
    "a.created_at, a.updated_at"
)

USAGE_TOTALS = """
    COALESCE(SUM(u.calls), 0) AS calls, COALESCE(SUM(u.input_tokens), 0) AS input_tokens,
    COALESCE(SUM(u.output_tokens), 0) AS output_tokens, COALESCE(SUM(u.total_tokens), 0) AS total_tokens,
    COALESCE(SUM(u.cost), 0) AS cost, COALESCE(SUM(u.markup_amount), 0) AS markup_amount
"""


def insert_app(
    user_id: UUID, name: str, description: str | None, markup: Decimal, accepts_customers: bool = False
) -> Row:
    with transaction() as conn:
        row = conn.execute(
            "INSERT INTO echo_apps AS a (user_id, name, description, markup, accepts_customers) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING " + _APP_COLUMNS,
            [user_id, name, description, markup, accepts_customers],
        ).fetchone()
    assert row is not None
    return row


_APPS_WITH_TOTALS = (
    f"SELECT {_APP_COLUMNS}, t.* FROM echo_apps a "
    f"CROSS JOIN LATERAL (SELECT {USAGE_TOTALS} FROM usage_daily u WHERE u.echo_app_id = a.id) t "
    "WHERE a.user_id = %s ORDER BY a.created_at DESC, a.id DESC"
)


def apps_with_totals(user_id: UUID) -> list[Row]:
    return connection().execute(_APPS_WITH_TOTALS, [user_id]).fetchall()


def app_for_owner(app_id: UUID, user_id: UUID) -> Row | None:
    return (
        connection()
        .execute(f"SELECT {_APP_COLUMNS} FROM echo_apps a WHERE a.id = %s AND a.user_id = %s", [app_id, user_id])
        .fetchone()
    )


_UPDATE_APP = (
    """
UPDATE echo_apps a SET
    name = CASE WHEN %(set_name)s THEN %(name)s ELSE a.name END,
    description = CASE WHEN %(set_description)s THEN %(description)s ELSE a.description END,
    markup = CASE WHEN %(set_markup)s THEN %(markup)s::numeric ELSE a.markup END,
    is_active = CASE WHEN %(set_is_active)s THEN %(is_active)s::boolean ELSE a.is_active END,
    accepts_customers = CASE WHEN %(set_accepts_customers)s THEN %(accepts_customers)s::boolean
                             ELSE a.accepts_customers END,
    redirect_uris = CASE WHEN %(set_redirect_uris)s THEN %(redirect_uris)s::text[] ELSE a.redirect_uris END,
    updated_at = now()
WHERE a.id = %(id)s AND a.user_id = %(user_id)s
RETURNING """
    + _APP_COLUMNS
)


def update_app(app_id: UUID, user_id: UUID, changes: dict[str, Any]) -> Row | None:
    """Sets only the columns named in changes (name, description, markup, is_active, accepts_customers,
    redirect_uris)."""
    params: dict[str, Any] = {"id": app_id, "user_id": user_id}
    for column in ("name", "description", "markup", "is_active", "accepts_customers", "redirect_uris"):
        params["set_" + column] = column in changes
        params[column] = changes.get(column)
    with transaction() as conn:
        return conn.execute(_UPDATE_APP, params).fetchone()


# One user's money on one app: the payment credits (less refunds) of payments made from it, and its calls' cost
# from the daily rollups (the user's rows, by usage_daily_user_idx).
_APP_MONEY = """
SELECT
    (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e JOIN payments p ON p.id = e.reference_id
     WHERE e.user_id = %(user_id)s AND e.kind IN ('payment_credit', 'refund') AND p.echo_app_id = %(app_id)s)
        ::numeric(18, 6) AS total_paid,
    (SELECT coalesce(sum(u.cost), 0) FROM usage_daily u WHERE u.user_id = %(user_id)s AND u.echo_app_id = %(app_id)s)
        ::numeric(18, 6) AS total_spent
"""


def app_money(app_id: UUID, user_id: UUID) -> Row:
    row = connection().execute(_APP_MONEY, {"app_id": app_id, "user_id": user_id}).fetchone()
    assert row is not None
    return row
