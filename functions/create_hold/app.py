"""POST /api/holds — reserve what a call in flight may cost (API key; Idempotency-Key for retries)."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body

from echo_control import holds
from echo_control.http import API_KEY, IdempotencyKey, created, entrypoint, key_caller, make_resolver
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
    return created(holds.create_hold(key_caller(app), body, idempotency_key))


lambda_handler = entrypoint(app)
