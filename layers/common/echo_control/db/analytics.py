"""Usage by model and by day, read from the daily rollups."""

from datetime import date
from uuid import UUID

from echo_control.db.apps import USAGE_TOTALS
from echo_control.db.connection import Row, connection

_USAGE_BY_MODEL = f"""
SELECT u.model, {USAGE_TOTALS} FROM usage_daily u
WHERE u.echo_app_id = %(app_id)s AND u.day BETWEEN %(since)s AND %(until)s
GROUP BY u.model ORDER BY cost DESC, u.model
"""
_USAGE_BY_DAY = f"""
SELECT u.day, {USAGE_TOTALS} FROM usage_daily u
WHERE u.echo_app_id = %(app_id)s AND u.day BETWEEN %(since)s AND %(until)s
GROUP BY u.day ORDER BY u.day
"""
_USAGE_BY_MODEL_ALL_TIME = f"""
SELECT u.model, {USAGE_TOTALS} FROM usage_daily u WHERE u.echo_app_id = %(app_id)s
GROUP BY u.model ORDER BY cost DESC, u.model
"""


def usage_by_model(app_id: UUID, since: date | None = None, until: date | None = None) -> list[Row]:
    if since is None or until is None:
        return connection().execute(_USAGE_BY_MODEL_ALL_TIME, {"app_id": app_id}).fetchall()
    return connection().execute(_USAGE_BY_MODEL, {"app_id": app_id, "since": since, "until": until}).fetchall()


def usage_by_day(app_id: UUID, since: date, until: date) -> list[Row]:
    return connection().execute(_USAGE_BY_DAY, {"app_id": app_id, "since": since, "until": until}).fetchall()
