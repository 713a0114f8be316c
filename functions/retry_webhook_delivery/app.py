"""POST /api/webhooks/{id}/deliveries/{deliveryId}/retry — send a delivery again now (same webhook-id)."""

from typing import Annotated

from echo_control import developer_webhooks
from echo_control.http import SESSION, Path, entrypoint, make_resolver, user_caller
from echo_control.models import NO_NUL, DeliveryOut

app = make_resolver()


@app.post("/api/webhooks/<id>/deliveries/<deliveryId>/retry", security=SESSION, tags=["Webhooks"])
def retry_webhook_delivery(
    id: Annotated[str, Path(max_length=64, pattern=NO_NUL)],
    deliveryId: Annotated[str, Path(max_length=64, pattern=NO_NUL)],
) -> DeliveryOut:
    return developer_webhooks.resend(user_caller(app).user_id, id, deliveryId)


lambda_handler = entrypoint(app)
