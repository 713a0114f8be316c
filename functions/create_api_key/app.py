"""POST /api/api-keys — a key for one of the caller's apps; the full key is in this response only."""

from typing import Annotated

from echo_control import keys
from echo_control.http import SESSION, Body, Response, entrypoint, json_response, make_resolver, user_caller
from echo_control.models import ApiKeyCreate, ApiKeyCreated

app = make_resolver()


@app.post(
    "/api/api-keys",
    security=SESSION,
    tags=["API keys"],
    responses={201: {"description": "Created", "content": {"application/json": {"model": ApiKeyCreated}}}},
)
def create_api_key(body: Annotated[ApiKeyCreate, Body()]) -> Response[ApiKeyCreated]:
    created = keys.create_key(user_caller(app).user_id, body)
    return json_response(created, 201, headers={"Cache-Control": "no-store"})


lambda_handler = entrypoint(app)
