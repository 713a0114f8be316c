"""POST /webhooks/{id}/deliveries/{delivery_id}/resend — send a delivery again now, from the endpoint's page."""

from typing import Annotated

from echo_control import developer_webhooks, pages
from echo_control.http import Path, Response, entrypoint

app = pages.page_resolver()


@app.post("/webhooks/<id>/deliveries/<delivery_id>/resend", include_in_schema=False)
def resend_delivery_page(
    id: Annotated[str, Path(max_length=64)], delivery_id: Annotated[str, Path(max_length=64)]
) -> Response[str]:
    who = pages.signed_in(app)
    pages.form(app)
    with pages.form_errors(back=f"/webhooks/{id}", form="resend", values={}):
        resent = developer_webhooks.resend(who.user_id, id, delivery_id)
    said = f"The {resent.event_type} delivery is on its way again (same webhook-id)."
    return pages.redirect(f"/webhooks/{id}", cookie=pages.leave_flash(app, notice=said, notice_kind="ok"))


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
