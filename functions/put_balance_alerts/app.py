"""PUT /api/balance/alerts — the low-balance threshold for balance.low webhooks (null: off)."""

from typing import Annotated

from echo_control import developer_webhooks
from echo_control.http import SESSION, Body, entrypoint, make_resolver, user_caller
from echo_control.models import BalanceAlertsIn, BalanceAlertsOut

app = make_resolver()


@app.put("/api/balance/alerts", security=SESSION, tags=["Webhooks"])
def put_balance_alerts(body: Annotated[BalanceAlertsIn, Body()]) -> BalanceAlertsOut:
    return developer_webhooks.set_balance_alerts(user_caller(app).user_id, body)


lambda_handler = entrypoint(app)
