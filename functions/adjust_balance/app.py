"""POST /api/balance — an admin credits or debits a user's balance, with a reason (idempotencyKey for retries)."""

from typing import Annotated, Any

from echo_control import ledger
from echo_control.errors import Forbidden
from echo_control.http import SESSION, Body, Response, created, entrypoint, make_resolver, user_caller
from echo_control.models import BalanceAdjust, BalanceOut

app = make_resolver()


@app.post(
    "/api/balance",
    security=SESSION,
    tags=["Balance"],
    responses={
        200: {
            "description": "The user's balance after it (the same idempotencyKey and request again replays it)",
            "content": {"application/json": {"model": BalanceOut}},
        },
        402: {"description": "A debit would take the balance below zero; nothing changes"},
        409: {"description": "This idempotencyKey was used for this user with a different request"},
    },
)
def adjust_balance(body: Annotated[BalanceAdjust, Body()]) -> Response[dict[str, Any]]:
    if not user_caller(app).is_admin:
        raise Forbidden("Only admins may adjust balances")
    return created(ledger.adjust_balance(body), status=200)


lambda_handler = entrypoint(app)
