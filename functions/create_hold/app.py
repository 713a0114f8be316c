"""POST /api/holds — reserve what a call in flight may cost (API key; Idempotency-Key for retries)."""

from typing import Annotated, Any

from echo_control import events, holds
from echo_control.http import API_KEY, Body, IdempotencyKey, Response, created, entrypoint, key_caller, make_resolver
from echo_control.models import HoldCreate, HoldCreated

app = make_resolver()


@app.post(
    "/api/holds",
    security=API_KEY,
    tags=["Holds"],
    responses={
        201: {"description": "Reserved", "content": {"application/json": {"model": HoldCreated}}},
        402: {"description": "What is available (or the key's limit) does not cover it; nothing is reserved"},
        409: {"description": "This API key used this Idempotency-Key with a different request"},
    },
)
def create_hold(
    body: Annotated[HoldCreate, Body()], idempotency_key: IdempotencyKey = None
) -> Response[dict[str, Any]]:
    who = key_caller(app)
    with events.reporting_key_limit(who.api_key_id):
        return created(holds.create_hold(who, body, idempotency_key))


lambda_handler = entrypoint(app)
