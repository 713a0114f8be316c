"""GET /api/holds/{id} — a hold and its status (active, settled, released, expired)."""

from typing import Annotated

from echo_control import holds
from echo_control.http import API_KEY, Path, entrypoint, key_caller, make_resolver
from echo_control.models import NO_NUL, HoldOut

app = make_resolver()


@app.get("/api/holds/<id>", security=API_KEY, tags=["Holds"])
def get_hold(id: Annotated[str, Path(max_length=64, pattern=NO_NUL)]) -> HoldOut:
    return holds.get_hold(key_caller(app), id)


lambda_handler = entrypoint(app)
