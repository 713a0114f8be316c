"""GET /api/me — who the credential belongs to: the user and, for an API key, its app."""

from echo_control import apps, db
from echo_control.errors import Unauthorized
from echo_control.http import SESSION_OR_API_KEY, caller, entrypoint, make_resolver
from echo_control.models import MeOut, UserOut

app = make_resolver()


@app.get("/api/me", security=SESSION_OR_API_KEY, tags=["Auth"])
def get_me() -> MeOut:
    who = caller(app)
    user = db.user_by_id(who.user_id)
    if user is None:
        raise Unauthorized("Unknown user")
    echo_app = apps.key_app(who.user_id, who.echo_app_id) if who.echo_app_id else None
    return MeOut(
        user=UserOut(id=str(user["id"]), email=user["email"], name=user["name"], role=who.role),
        auth_type=who.auth_type,
        echo_app=echo_app,
    )


lambda_handler = entrypoint(app)
