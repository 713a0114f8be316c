"""GET /api/transactions/export — history as CSV for a date range; X-Next-Cursor continues a long export."""

from typing import Annotated

from echo_control import analytics, apps
from echo_control.http import SESSION, Query, Response, entrypoint, make_resolver, user_caller
from echo_control.models import NO_NUL, DateOrTime

app = make_resolver()


@app.get(
    "/api/transactions/export",
    security=SESSION,
    tags=["Transactions"],
    responses={200: {"description": "CSV, newest first", "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def export_transactions(
    echo_app_id: Annotated[str | None, Query(alias="echoAppId", max_length=64, pattern=NO_NUL)] = None,
    since: Annotated[DateOrTime | None, Query(alias="from")] = None,
    until: Annotated[DateOrTime | None, Query(alias="to")] = None,
    cursor: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
) -> Response[str]:
    owner = user_caller(app).user_id
    app_scope, used_app_id = apps.history_scope(owner, echo_app_id)  # an owner's app: every call; else one's own
    text, next_cursor = analytics.export_csv(owner, app_scope, since, until, cursor, used_app_id)
    headers = {"Content-Disposition": 'attachment; filename="transactions.csv"'}
    if next_cursor:
        headers["X-Next-Cursor"] = next_cursor
    return Response(status_code=200, content_type="text/csv; charset=utf-8", body=text, headers=headers)


lambda_handler = entrypoint(app)
