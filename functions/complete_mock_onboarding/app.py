"""POST /connect/mock/{accountId}/complete — "finish onboarding": the mock sends a signed account.updated."""

from typing import Annotated

from echo_control import origins, pages, payments, payouts
from echo_control.http import Path, Response, entrypoint, make_resolver

app = make_resolver()


@app.post("/connect/mock/<account_id>/complete", include_in_schema=False)
def complete_mock_onboarding(account_id: Annotated[str, Path(max_length=100)]) -> Response[str]:
    fields = pages.form(app)
    payouts.mock_complete_onboarding(account_id, origins.own_webhook_url(app.current_event.raw_event))
    back = pages.local_path(fields.get("return"), "/earnings")
    return pages.redirect(payments.with_query(back, onboarding="complete"))


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
