"""POST /api/holds — reserve what a call in flight may cost (API key; Idempotency-Key for retries)."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header

from echo_control import events, holds
from echo_control.http import API_KEY, JSON, entrypoint, key_caller, make_resolver
from echo_control.models import NO_NUL, HoldCreate, HoldCreated

app = make_resolver()


@app.post(
    "/api/holds",
    security=API_KEY,
    tags=["Holds"],
    responses={
        201: {"description": "Reserved", "content": {"application/json": {"model": HoldCreated}}},
        402: {"description": "What is available (or the key's limit) does not cover it; nothing is reserved"},
        409: {"description": "This Idempotency-Key was used with a different request"},
    },
)
def create_hold(
    body: Annotated[HoldCreate, Body()],
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200, pattern=NO_NUL)
    ] = None,
) -> Response[dict[str, Any]]:
    who = key_caller(app)
    with events.reporting_key_limit(who.api_key_id):
        status, response, replayed = holds.create_hold(who, body, idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return Response(status_code=status, content_type=JSON, body=response, headers=headers)


lambda_handler = entrypoint(app)
