"""GET /api/payments — the caller's payment history, newest first."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from echo_control import auth, payments
from echo_control.http import entrypoint, make_resolver, user_caller
from echo_control.models import PaymentList

app = make_resolver()


@app.get("/api/payments", tags=["Payments"])
def list_payments(user_id: Annotated[str | None, Query(alias="userId", max_length=64)] = None) -> PaymentList:
    return payments.list_payments(auth.acting_user(user_caller(app), user_id))


lambda_handler = entrypoint(app)
