"""GET /api/echo-apps/{id}/prices — the models the app allows and its own prices (owner, or a key of the app)."""

from typing import Annotated

from echo_control import apps
from echo_control.http import SESSION_OR_API_KEY, Path, caller, entrypoint, make_resolver
from echo_control.models import NO_NUL, AppPrices

app = make_resolver()


@app.get("/api/echo-apps/<id>/prices", security=SESSION_OR_API_KEY, tags=["Echo apps"])
def get_app_prices(id: Annotated[str, Path(max_length=64, pattern=NO_NUL)]) -> AppPrices:
    who = caller(app)
    return apps.app_prices(who.user_id, id, key_app_id=who.echo_app_id)


lambda_handler = entrypoint(app)
