"""GET /api/echo-apps — the caller's Echo apps, each with its usage totals."""

from echo_control import apps, auth
from echo_control.http import SESSION, ActingUserId, entrypoint, make_resolver, user_caller
from echo_control.models import EchoAppList

app = make_resolver()


@app.get("/api/echo-apps", security=SESSION, tags=["Echo apps"])
def list_echo_apps(
    user_id: ActingUserId = None,
) -> EchoAppList:
    return apps.list_apps(auth.acting_user(user_caller(app), user_id))


lambda_handler = entrypoint(app)
