"""DELETE /api/holds/{id} — release a hold: what it reserved is available again."""

from typing import Annotated

from echo_control import holds
from echo_control.http import API_KEY, Path, entrypoint, key_caller, make_resolver
from echo_control.models import NO_NUL, HoldReleased

app = make_resolver()


@app.delete(
    "/api/holds/<id>",
    security=API_KEY,
    tags=["Holds"],
    responses={
        200: {
            "description": "Released (or, past its time, expired)",
            "content": {"application/json": {"model": HoldReleased}},
        },
        409: {"description": "The hold was settled"},
    },
)
def release_hold(id: Annotated[str, Path(max_length=64, pattern=NO_NUL)]) -> HoldReleased:
    return holds.release_hold(key_caller(app), id)


lambda_handler = entrypoint(app)
