"""GET /balance/statement.csv — the balance page's statement download (session cookie, unlike the bearer API)."""

from typing import Annotated

from echo_control import ledger, pages
from echo_control.http import Query, Response, entrypoint
from echo_control.models import MAX_PAGE_SIZE

app = pages.page_resolver()


@app.get("/balance/statement.csv", include_in_schema=False)
def export_statement(cursor: Annotated[str | None, Query(max_length=20)] = None) -> Response[str]:
    who = pages.signed_in(app)
    page = ledger.statement(who.user_id, cursor, MAX_PAGE_SIZE)
    headers = {"Content-Disposition": 'attachment; filename="statement.csv"'}
    if page.next_cursor:
        headers["X-Next-Cursor"] = page.next_cursor
    return Response(200, "text/csv; charset=utf-8", ledger.statement_csv(page), headers)


lambda_handler = entrypoint(app)
