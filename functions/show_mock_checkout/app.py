"""GET /checkout/mock/{sessionId} — the local stand-in for Stripe Checkout (only without a Stripe key)."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path

from echo_control import pages, payments
from echo_control.http import entrypoint, make_resolver

app = make_resolver()


@app.get("/checkout/mock/<session_id>", include_in_schema=False)
def show_mock_checkout(session_id: Annotated[str, Path(max_length=100)]) -> Response[str]:
    payment = payments.mock_session(session_id)
    return pages.render("mock_checkout.html", payment=payment, session_id=session_id, user=pages.page_caller(app))


lambda_handler = entrypoint(app)
