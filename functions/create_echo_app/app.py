"""POST /api/echo-apps — register an Echo app."""

from typing import Annotated

from echo_control import apps
from echo_control.http import SESSION, Body, Response, entrypoint, json_response, make_resolver, user_caller
from echo_control.models import EchoAppCreate, EchoAppCreated

app = make_resolver()


@app.post(
    "/api/echo-apps",
    security=SESSION,
    tags=["Echo apps"],
    responses={201: {"description": "Created", "content": {"application/json": {"model": EchoAppCreated}}}},
)
def create_echo_app(body: Annotated[EchoAppCreate, Body()]) -> Response[EchoAppCreated]:
    return json_response(apps.create_app(user_caller(app).user_id, body), 201)


lambda_handler = entrypoint(app)
