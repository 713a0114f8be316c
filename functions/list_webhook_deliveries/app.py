"""GET /api/webhooks/{id}/deliveries — the endpoint's latest deliveries with their status and attempts."""

from typing import Annotated

from echo_control import developer_webhooks
from echo_control.http import SESSION, Path, entrypoint, make_resolver, user_caller
from echo_control.models import NO_NUL, DeliveryList

app = make_resolver()


@app.get("/api/webhooks/<id>/deliveries", security=SESSION, tags=["Webhooks"])
def list_webhook_deliveries(id: Annotated[str, Path(max_length=64, pattern=NO_NUL)]) -> DeliveryList:
    return developer_webhooks.deliveries(user_caller(app).user_id, id)


lambda_handler = entrypoint(app)
