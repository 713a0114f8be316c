"""Usage analytics from the daily rollups (never the raw rows), and CSV export of history in pages."""

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

from echo_control import apps, db
from echo_control.errors import BadRequest
from echo_control.models import DayUsage, ModelUsage, UsageOut, UsageTotals

DEFAULT_DAYS = 30
MAX_DAYS = 366 * 2
EXPORT_PAGE_ROWS = 1000
EXPORT_MAX_ROWS = 50_000  # per request; X-Next-Cursor continues (keeps a response under Lambda's 6 MB)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection): such text gets a leading '.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = [
    "id",
    "createdAt",
    "echoAppId",
    "model",
    "status",
    "inputTokens",
    "outputTokens",
    "totalTokens",
    "providerCost",
    "markupAmount",
    "cost",
]


def day_of(bound: date | datetime | None) -> date | None:
    """A range bound as a UTC day: a timestamp counts for the day it falls in."""
    return bound.astimezone(UTC).date() if isinstance(bound, datetime) else bound


def instant_of(bound: date | datetime | None, *, end: bool) -> datetime | None:
    """A range bound as an instant: a date starts at its UTC midnight, or as an end takes its whole day."""
    if bound is None or isinstance(bound, datetime):
        return bound
    return datetime.combine(bound + timedelta(days=1 if end else 0), time.min, tzinfo=UTC)


def date_range(since: date | datetime | None, until: date | datetime | None) -> tuple[date, date]:
    since, until = day_of(since), day_of(until)
    until = until or datetime.now(UTC).date()
    since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise BadRequest("from must not be after to", details={"field": "from"})
    if (until - since).days > MAX_DAYS:
        raise BadRequest(f"The range may span at most {MAX_DAYS} days", details={"field": "from"})
    return since, until


def app_usage(user_id: UUID, app_id: str, since: date | datetime | None, until: date | datetime | None) -> UsageOut:
    app = apps.owned_app(user_id, app_id)
    since, until = date_range(since, until)
    by_model = [
        ModelUsage(model=r["model"], **apps.totals_from(r).model_dump())
        for r in db.usage_by_model(app["id"], since, until)
    ]
    by_day = [
        DayUsage(day=r["day"], **apps.totals_from(r).model_dump()) for r in db.usage_by_day(app["id"], since, until)
    ]
    return UsageOut(
        echo_app_id=str(app["id"]),
        since=since,
        until=until,
        totals=UsageTotals.sum(by_model),
        by_model=by_model,
        by_day=by_day,
    )


def spreadsheet_safe(value: object) -> object:
    """Text that a spreadsheet would run as a formula, made inert; numbers and other text unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def export_csv(
    user_id: UUID,
    app_scope: UUID | None,
    since: date | datetime | None,
    until: date | datetime | None,
    cursor: str | None,
    echo_app_id: UUID | None = None,
) -> tuple[str, str | None]:
    """(CSV text, next cursor): rows newest first, fetched a page at a time and written as they come."""
    since, until = instant_of(since, end=False), instant_of(until, end=True)
    from echo_control import ledger

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    written = 0
    while written < EXPORT_MAX_ROWS:
        page = ledger.list_transactions(
            user_id,
            app_scope=app_scope,
            echo_app_id=echo_app_id,
            since=since,
            until=until,
            cursor=cursor,
            limit=min(EXPORT_PAGE_ROWS, EXPORT_MAX_ROWS - written),
        )
        for t in page.transactions:
            row = [
                t.id,
                t.created_at.isoformat(),
                t.echo_app_id or "",
                t.model,
                t.status,
                t.input_tokens,
                t.output_tokens,
                t.total_tokens,
                t.provider_cost,
                t.markup_amount,
                t.cost,
            ]
            writer.writerow([spreadsheet_safe(cell) for cell in row])
        written += len(page.transactions)
        cursor = page.next_cursor
        if cursor is None:
            break
    return out.getvalue(), cursor
