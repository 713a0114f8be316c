"""POST /api/stripe/payment-link — a Stripe Checkout link for credits (USD); an API key buys for its own app."""

from typing import Annotated

from echo_control import origins, payments
from echo_control.http import SESSION_OR_API_KEY, Body, Response, caller, entrypoint, json_response, make_resolver
from echo_control.models import PaymentLinkIn, PaymentLinkOut

app = make_resolver()


@app.post(
    "/api/stripe/payment-link",
    security=SESSION_OR_API_KEY,
    tags=["Payments"],
    responses={201: {"description": "Created", "content": {"application/json": {"model": PaymentLinkOut}}}},
)
def create_payment_link(body: Annotated[PaymentLinkIn, Body()]) -> Response[PaymentLinkOut]:
    who = caller(app)
    base_url = origins.public_base_url(app.current_event.raw_event)
    link = payments.create_payment_link(who.user_id, body, base_url=base_url, key_app_id=who.echo_app_id)
    return json_response(link, 201)


lambda_handler = entrypoint(app)
