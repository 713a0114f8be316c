"""POST /api/stripe/webhook — Stripe's signed deliveries, platform and Connect: payments and payouts, applied once."""

from echo_control import payments
from echo_control.errors import PayloadTooLarge
from echo_control.http import entrypoint, make_resolver
from echo_control.models import WebhookAck

MAX_EVENT_BYTES = 512 * 1024

app = make_resolver()


@app.post("/api/stripe/webhook", tags=["Payments"])
def stripe_webhook() -> WebhookAck:
    event = app.current_event
    payload = event.decoded_body or ""  # the raw bytes Stripe signed (API Gateway may base64 them)
    if len(payload) > MAX_EVENT_BYTES:
        raise PayloadTooLarge("Event too large")
    signature = event.headers.get("stripe-signature")  # headers are case-insensitive here
    applied = payments.handle_webhook(payload, signature)
    return WebhookAck(received=True, applied=applied)


# Stripe's content type and sizes are its own: the route checks them itself.
lambda_handler = entrypoint(app, json_body=False)
