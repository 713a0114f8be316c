"""POST /api/holds/{id}/settle — record the call against its hold: the real cost is taken, the rest released."""

from typing import Annotated, Any

from echo_control import holds, observability
from echo_control.http import API_KEY, Body, Path, Response, created, entrypoint, key_caller, make_resolver
from echo_control.models import NO_NUL, HoldSettled, TransactionCreate

app = make_resolver()


@app.post(
    "/api/holds/<id>/settle",
    security=API_KEY,
    tags=["Holds"],
    responses={
        201: {
            "description": "Recorded (the same body again replays it)",
            "content": {"application/json": {"model": HoldSettled}},
        },
        409: {"description": "Settled with another body, released, or past its expiresAt"},
    },
)
def settle_hold(
    id: Annotated[str, Path(max_length=64, pattern=NO_NUL)], body: Annotated[TransactionCreate, Body()]
) -> Response[dict[str, Any]]:
    outcome = holds.settle_hold(key_caller(app), id, body)
    if not outcome.replayed:
        observability.count("TransactionsRecorded")
    return created(outcome)


lambda_handler = entrypoint(app)
