"""GET /api/echo-apps/{id} — app details: usage by model, keys, recent transactions (owner, or a key of the app); a
customer gets the app's public view (id, name, description, markup)."""

from typing import Annotated

from echo_control import apps
from echo_control.http import SESSION_OR_API_KEY, Path, caller, entrypoint, make_resolver
from echo_control.models import NO_NUL, EchoAppDetail, EchoAppPublic

app = make_resolver()


@app.get("/api/echo-apps/<id>", security=SESSION_OR_API_KEY, tags=["Echo apps"])
def get_echo_app(id: Annotated[str, Path(max_length=64, pattern=NO_NUL)]) -> EchoAppDetail | EchoAppPublic:
    who = caller(app)
    return apps.app_view(who.user_id, id, key_app_id=who.echo_app_id)


lambda_handler = entrypoint(app)
