"""GET /api/webhooks — the caller's webhook endpoints (never their secrets)."""

from echo_control import developer_webhooks
from echo_control.http import SESSION, entrypoint, make_resolver, user_caller
from echo_control.models import WebhookList

app = make_resolver()


@app.get("/api/webhooks", security=SESSION, tags=["Webhooks"])
def list_webhooks() -> WebhookList:
    return developer_webhooks.list_endpoints(user_caller(app).user_id)


lambda_handler = entrypoint(app)
