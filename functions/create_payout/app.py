"""POST /api/payouts — pay available earnings out to the caller's connected account (Idempotency-Key for retries)."""

from typing import Annotated

from echo_control import observability, payouts
from echo_control.http import (
    SESSION,
    Body,
    IdempotencyKey,
    Response,
    entrypoint,
    json_response,
    make_resolver,
    user_caller,
)
from echo_control.models import PayoutCreate, PayoutOut

app = make_resolver()


@app.post(
    "/api/payouts",
    security=SESSION,
    tags=["Earnings"],
    responses={
        201: {"description": "The payout, as it is now", "content": {"application/json": {"model": PayoutOut}}},
        402: {"description": "The amount exceeds the available earnings; nothing is recorded"},
        409: {"description": "Payouts are not enabled (onboarding unfinished), or the Idempotency-Key was reused"},
        422: {"description": "Below the minimum payout (ECHO_MIN_PAYOUT_USD), or not dollars with at most cents"},
        502: {"description": "Stripe did not confirm the transfer: the payout stays pending; retry with the same key"},
    },
)
def create_payout(
    body: Annotated[PayoutCreate, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[PayoutOut]:
    payout, replayed = payouts.request_payout(user_caller(app).user_id, body, idempotency_key)
    if not replayed:
        observability.count("PayoutsRequested")
    return json_response(payout, 201, headers={"Idempotent-Replayed": "true"} if replayed else {})


lambda_handler = entrypoint(app)
