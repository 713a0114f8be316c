"""GET /api/echo-apps/{id} — app details: usage by model, keys, recent transactions (owner only)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from echo_control import apps
from echo_control.http import SESSION, entrypoint, make_resolver, user_caller
from echo_control.models import NO_NUL, EchoAppDetail

app = make_resolver()


@app.get("/api/echo-apps/<id>", security=SESSION, tags=["Echo apps"])
def get_echo_app(id: Annotated[str, Path(max_length=64, pattern=NO_NUL)]) -> EchoAppDetail:
    return apps.app_details(user_caller(app).user_id, id)


lambda_handler = entrypoint(app)
