"""What app owners earned: the markup on their apps' calls. The account's figures are the earnings ledger's cached
totals; the per-app and per-day figures come from the daily rollups (never the raw transactions)."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from echo_control import analytics, apps, config, db
from echo_control.models import AppEarnings, AppEarningsOut, DayEarnings, EarningsOut, ModelEarnings

RECENT_DAYS = 30
# A day's rollups change only while calls are recorded on it (UTC); two days later they are final, and an app's
# all-time figures keep their sum (db.close_earnings_days) instead of reading every day of its history again.
OPEN_DAYS = 2
ZERO = Decimal("0.000000")


def _closed_through() -> date:
    return datetime.now(UTC).date() - timedelta(days=OPEN_DAYS)


def earnings(user_id: UUID) -> EarningsOut:
    """The owner's account (available, pending, paid out, lifetime) and each app's lifetime and last 30 days."""
    account = db.earnings_account(user_id) or {}
    since = datetime.now(UTC).date() - timedelta(days=RECENT_DAYS - 1)
    closed = _closed_through()
    rows = db.earnings_by_app(user_id, since, closed)
    if stale := [r["echo_app_id"] for r in rows if r["stale"]]:  # the figures are right already; the next are faster
        db.close_earnings_days(stale, closed)
    return EarningsOut(
        clearing=account.get("clearing", ZERO),
        available=account.get("available", ZERO),
        pending=account.get("pending", ZERO),
        paid_out=account.get("paid_out", ZERO),
        lifetime=account.get("lifetime", ZERO),
        reversed=account.get("reversed", ZERO),
        payouts_enabled=bool(account.get("payouts_enabled")),
        minimum_payout=config.settings().min_payout_usd,
        apps=[
            AppEarnings(
                echo_app_id=str(r["echo_app_id"]), name=r["name"], lifetime=r["lifetime"], last_30_days=r["recent"]
            )
            for r in rows
        ],
    )


def app_earnings(
    user_id: UUID, app_id: str, since: date | datetime | None = None, until: date | datetime | None = None
) -> AppEarningsOut:
    """One app's earnings (owner only): lifetime, and per day and per model over a range (default: 30 days)."""
    app = apps.owned_app(user_id, app_id)
    first, last = analytics.date_range(since, until)
    by_day = [DayEarnings(**r) for r in db.app_earnings_by_day(app["id"], first, last)]
    closed = _closed_through()
    lifetime = db.app_lifetime_earnings(app["id"], closed) or {"lifetime": ZERO, "stale": False}
    if lifetime["stale"]:
        db.close_earnings_days([app["id"]], closed)
    return AppEarningsOut(
        echo_app_id=str(app["id"]),
        lifetime=lifetime["lifetime"],
        since=first,
        until=last,
        total=sum((d.amount for d in by_day), ZERO),
        by_day=by_day,
        by_model=[ModelEarnings(**r) for r in db.app_earnings_by_model(app["id"], first, last)],
    )


def owner_by_day(user_id: UUID, since: date, until: date) -> list[DayEarnings]:
    """Every app of the owner together, per day (the earnings page's chart)."""
    return [DayEarnings(**r) for r in db.owner_earnings_by_day(user_id, since, until)]
