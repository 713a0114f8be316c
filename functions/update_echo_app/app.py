"""PUT /api/echo-apps/{id} — change name, description, markup or the active flag (owner only)."""

from typing import Annotated

from echo_control import apps
from echo_control.http import SESSION, Body, Path, entrypoint, make_resolver, user_caller
from echo_control.models import NO_NUL, EchoAppOut, EchoAppUpdate

app = make_resolver()


@app.put("/api/echo-apps/<id>", security=SESSION, tags=["Echo apps"])
def update_echo_app(
    id: Annotated[str, Path(max_length=64, pattern=NO_NUL)],
    body: Annotated[EchoAppUpdate, Body()],
) -> EchoAppOut:
    return apps.update_app(user_caller(app).user_id, id, body)


lambda_handler = entrypoint(app)
