"""GET /api/balance — balance, total paid and total spent, for a user session or an API key."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from echo_control import auth, ledger
from echo_control.http import caller, entrypoint, make_resolver
from echo_control.models import BalanceOut

app = make_resolver()


@app.get("/api/balance", tags=["Balance"])
def get_balance(user_id: Annotated[str | None, Query(alias="userId", max_length=64)] = None) -> BalanceOut:
    return ledger.get_balance(auth.acting_user(caller(app), user_id))


lambda_handler = entrypoint(app)
