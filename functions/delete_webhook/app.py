"""DELETE /api/webhooks/{id} — remove a webhook endpoint with its deliveries; answers the endpoint removed."""

from typing import Annotated

from echo_control import developer_webhooks
from echo_control.http import SESSION, Path, entrypoint, make_resolver, user_caller
from echo_control.models import NO_NUL, WebhookOut

app = make_resolver()


@app.delete("/api/webhooks/<id>", security=SESSION, tags=["Webhooks"])
def delete_webhook(id: Annotated[str, Path(max_length=64, pattern=NO_NUL)]) -> WebhookOut:
    return developer_webhooks.delete_endpoint(user_caller(app).user_id, id)


lambda_handler = entrypoint(app)
