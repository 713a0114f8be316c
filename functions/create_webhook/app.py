"""POST /api/webhooks — add a webhook endpoint; the answer shows its signing secret, once."""

from typing import Annotated

from echo_control import developer_webhooks
from echo_control.http import SESSION, Body, Response, entrypoint, json_response, make_resolver, user_caller
from echo_control.models import WebhookCreate, WebhookCreated

app = make_resolver()


@app.post(
    "/api/webhooks",
    security=SESSION,
    tags=["Webhooks"],
    responses={
        201: {"description": "Added", "content": {"application/json": {"model": WebhookCreated}}},
        409: {"description": "The caller has 20 endpoints already (too_many_webhooks)"},
        422: {"description": "Not https (in the cloud), or a private, loopback or link-local address (private_url)"},
    },
)
def create_webhook(body: Annotated[WebhookCreate, Body()]) -> Response[WebhookCreated]:
    return json_response(developer_webhooks.create_endpoint(user_caller(app).user_id, body), 201)


lambda_handler = entrypoint(app)
