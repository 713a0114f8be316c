"""POST /api/balance — an admin credits or debits a user's balance, with a reason."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from echo_control import ledger
from echo_control.errors import Forbidden
from echo_control.http import SESSION, entrypoint, make_resolver, user_caller
from echo_control.models import BalanceAdjust, BalanceOut

app = make_resolver()


@app.post(
    "/api/balance",
    security=SESSION,
    tags=["Balance"],
    responses={402: {"description": "A debit would take the balance below zero; nothing changes"}},
)
def adjust_balance(body: Annotated[BalanceAdjust, Body()]) -> BalanceOut:
    if not user_caller(app).is_admin:
        raise Forbidden("Only admins may adjust balances")
    return ledger.adjust_balance(body)


lambda_handler = entrypoint(app)
