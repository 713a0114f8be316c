"""POST /webhooks — add an endpoint, then back to the webhooks page, which shows its secret this once."""

from echo_control import developer_webhooks, pages
from echo_control.errors import Unprocessable
from echo_control.http import Response, entrypoint
from echo_control.models import WebhookCreate

app = pages.page_resolver()
EVENT_FIELD = "event:"  # one checkbox per event type: event:payment.succeeded=on


@app.post("/webhooks", include_in_schema=False)
def create_webhook_page() -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    chosen = [name.removeprefix(EVENT_FIELD) for name in fields if name.startswith(EVENT_FIELD)]
    with pages.form_errors(back="/webhooks", form="create_webhook", values=fields):
        if not chosen:
            raise Unprocessable("Choose at least one event to receive")
        body = pages.parse_form(WebhookCreate, {"url": fields.get("url", ""), "events": chosen})
        created = developer_webhooks.create_endpoint(who.user_id, body)
    shown_once = pages.leave_flash(app, new_webhook={"url": created.url, "secret": created.secret})
    return pages.redirect("/webhooks", cookie=shown_once)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
