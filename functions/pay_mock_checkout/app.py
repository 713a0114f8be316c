"""POST /checkout/mock/{sessionId}/pay — "pay": the mock signs and sends Stripe's completed event to our webhook."""

from typing import Annotated

from echo_control import origins, pages, payments
from echo_control.http import Path, Response, entrypoint, make_resolver

app = make_resolver()


@app.post("/checkout/mock/<session_id>/pay", include_in_schema=False)
def pay_mock_checkout(session_id: Annotated[str, Path(max_length=100)]) -> Response[str]:
    fields = pages.form(app)
    payments.mock_pay(session_id, origins.own_webhook_url(app.current_event.raw_event))
    return pages.redirect(payments.with_query(pages.local_path(fields.get("return"), "/balance"), payment="success"))


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
