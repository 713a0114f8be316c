"""POST /setup/mock/{sessionId}/complete — "Save card": the mock sends a signed setup_intent.succeeded."""

from typing import Annotated

from echo_control import auto_top_up, origins, pages, payments
from echo_control.http import Path, Response, entrypoint, make_resolver

app = make_resolver()


@app.post("/setup/mock/<session_id>/complete", include_in_schema=False)
def complete_mock_setup(session_id: Annotated[str, Path(max_length=100)]) -> Response[str]:
    fields = pages.form(app)
    webhook_url = origins.own_webhook_url(app.current_event.raw_event)
    auto_top_up.mock_complete_setup(session_id, webhook_url, fields.get("card", "succeeds"))
    back = pages.local_path(fields.get("return"), "/balance")
    return pages.redirect(payments.with_query(back, card="saved"))


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
