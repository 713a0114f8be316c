"""GET /apps/{id}/transactions.csv — the app page's CSV download (session cookie, unlike the bearer API)."""

from typing import Annotated

from echo_control import analytics, apps, pages
from echo_control.http import Path, Query, Response, entrypoint

app = pages.page_resolver()


@app.get("/apps/<id>/transactions.csv", include_in_schema=False)
def export_app_transactions(
    id: Annotated[str, Path(max_length=64)],
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response[str]:
    who = pages.signed_in(app)
    app_scope, used_app_id = apps.history_scope(who.user_id, id)  # an owner's app: every call; else one's own
    text, next_cursor = analytics.export_csv(who.user_id, app_scope, None, None, cursor, used_app_id)
    headers = {"Content-Disposition": f'attachment; filename="{app_scope or used_app_id}-transactions.csv"'}
    if next_cursor:
        headers["X-Next-Cursor"] = next_cursor
    return Response(status_code=200, content_type="text/csv; charset=utf-8", body=text, headers=headers)


lambda_handler = entrypoint(app)
