"""PUT /api/balance/auto-top-up — turn automatic top-up on or off: {enabled, threshold, amount, monthlyLimit}."""

from typing import Annotated

from echo_control import auto_top_up
from echo_control.http import SESSION, Body, entrypoint, make_resolver, user_caller
from echo_control.models import AutoTopUpIn, AutoTopUpOut

app = make_resolver()


@app.put(
    "/api/balance/auto-top-up",
    security=SESSION,
    tags=["Balance"],
    responses={
        200: {"description": "The settings as stored", "content": {"application/json": {"model": AutoTopUpOut}}},
        409: {"description": "card_required: turning it on needs a saved card (POST /api/stripe/setup-link)"},
        422: {"description": "A number out of bounds, monthlyLimit below amount, or one missing to turn it on"},
    },
)
def put_auto_top_up(body: Annotated[AutoTopUpIn, Body()]) -> AutoTopUpOut:
    return auto_top_up.configure(user_caller(app).user_id, body)


lambda_handler = entrypoint(app)
