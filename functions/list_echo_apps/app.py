"""GET /api/echo-apps — the caller's Echo apps with usage totals (an API key: its own app)."""

from echo_control import apps, auth
from echo_control.http import SESSION_OR_API_KEY, ActingUserId, caller, entrypoint, make_resolver
from echo_control.models import EchoAppList

app = make_resolver()


@app.get("/api/echo-apps", security=SESSION_OR_API_KEY, tags=["Echo apps"])
def list_echo_apps(
    user_id: ActingUserId = None,
) -> EchoAppList:
    who = caller(app)
    return apps.list_apps(auth.acting_user(who, user_id), key_app_id=who.echo_app_id)


lambda_handler = entrypoint(app)
