"""GET /api/transactions — the caller's LLM call history, newest first, filtered, cursor-paginated."""

from typing import Annotated

from echo_control import apps, auth, ledger
from echo_control.http import SESSION, ActingUserId, Query, entrypoint, make_resolver, user_caller
from echo_control.models import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    NO_NUL,
    DateOrTime,
    TransactionPage,
    TransactionStatus,
)

app = make_resolver()


@app.get("/api/transactions", security=SESSION, tags=["Transactions"])
def list_transactions(
    echo_app_id: Annotated[str | None, Query(alias="echoAppId", max_length=64, pattern=NO_NUL)] = None,
    model: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    status: Annotated[TransactionStatus | None, Query()] = None,
    since: Annotated[DateOrTime | None, Query(alias="from")] = None,
    until: Annotated[DateOrTime | None, Query(alias="to")] = None,
    cursor: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    user_id: ActingUserId = None,
) -> TransactionPage:
    owner = auth.acting_user(user_caller(app), user_id)
    app_scope, used_app_id = apps.history_scope(owner, echo_app_id)  # an owner's app: every call; else one's own
    return ledger.list_transactions(
        owner,
        app_scope=app_scope,
        echo_app_id=used_app_id,
        model=model,
        status=status,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )


lambda_handler = entrypoint(app)
