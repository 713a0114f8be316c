"""POST /api/stripe/payment-link — a Stripe Checkout link for an amount of credits (USD)."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body

from echo_control import origins, payments
from echo_control.http import SESSION, entrypoint, json_response, make_resolver, user_caller
from echo_control.models import PaymentLinkIn, PaymentLinkOut

app = make_resolver()


@app.post(
    "/api/stripe/payment-link",
    security=SESSION,
    tags=["Payments"],
    responses={201: {"description": "Created", "content": {"application/json": {"model": PaymentLinkOut}}}},
)
def create_payment_link(body: Annotated[PaymentLinkIn, Body()]) -> Response[PaymentLinkOut]:
    base_url = origins.public_base_url(app.current_event.raw_event)
    return json_response(payments.create_payment_link(user_caller(app).user_id, body, base_url=base_url), 201)


lambda_handler = entrypoint(app)
