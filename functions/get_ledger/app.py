"""GET /api/ledger — the balance statement: every entry, newest first, with the balance after it (JSON or CSV).

A signed-in user's only: the statement lists every app's calls, payments and admins' reasons, which an API key (one
app's) must not read; a key is 403 `user_session_required`, as on /api/transactions."""

from typing import Annotated, Any, Literal

from echo_control import auth, ledger
from echo_control.http import JSON, SESSION, ActingUserId, Query, Response, entrypoint, make_resolver, user_caller
from echo_control.models import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, NO_NUL, LedgerPage

app = make_resolver()


@app.get(
    "/api/ledger",
    security=SESSION,
    tags=["Balance"],
    responses={
        200: {
            "description": "The statement; with format=csv, the same page as CSV (X-Next-Cursor continues it)",
            "content": {"application/json": {"model": LedgerPage}, "text/csv": {"schema": {"type": "string"}}},
        }
    },
)
def get_ledger(
    user_id: ActingUserId = None,
    cursor: Annotated[str | None, Query(max_length=20, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response[Any]:
    page = ledger.statement(auth.acting_user(user_caller(app), user_id), cursor, limit)
    if format == "csv":
        headers = {"Content-Disposition": 'attachment; filename="statement.csv"'}
        if page.next_cursor:
            headers["X-Next-Cursor"] = page.next_cursor
        return Response(200, "text/csv; charset=utf-8", ledger.statement_csv(page), headers)
    return Response(200, JSON, page.model_dump(mode="json", by_alias=True))


lambda_handler = entrypoint(app)
