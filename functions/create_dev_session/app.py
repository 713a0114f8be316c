"""POST /api/dev/session — sign in with just an email (dev mode only; 404 otherwise)."""

from typing import Annotated

from echo_control import auth
from echo_control.http import Body, entrypoint, make_resolver
from echo_control.models import DevSessionIn, DevSessionOut, UserOut

app = make_resolver()


@app.post("/api/dev/session", tags=["Auth"])
def create_dev_session(body: Annotated[DevSessionIn, Body()]) -> DevSessionOut:
    token, user = auth.issue_dev_session(body.email, body.name)
    return DevSessionOut(
        token=token,
        user=UserOut(id=str(user["id"]), email=user["email"], name=user["name"], role=user["role"]),
    )


lambda_handler = entrypoint(app)
