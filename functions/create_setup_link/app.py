"""POST /api/stripe/setup-link — Stripe Checkout in setup mode: saves a card for automatic top-up (off-session)."""

from echo_control import auto_top_up, origins
from echo_control.http import SESSION, Response, entrypoint, json_response, make_resolver, user_caller
from echo_control.models import SetupLinkOut

app = make_resolver()


@app.post(
    "/api/stripe/setup-link",
    security=SESSION,
    tags=["Payments"],
    responses={201: {"description": "Created", "content": {"application/json": {"model": SetupLinkOut}}}},
)
def create_setup_link() -> Response[SetupLinkOut]:
    who = user_caller(app)
    base_url = origins.public_base_url(app.current_event.raw_event)
    return json_response(auto_top_up.setup_link(who.user_id, who.email, base_url=base_url), 201)


lambda_handler = entrypoint(app)
