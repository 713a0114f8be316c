"""GET /api/api-keys — the caller's API keys (display prefix and last 4 only)."""

from echo_control import auth, keys
from echo_control.http import SESSION, ActingUserId, entrypoint, make_resolver, user_caller
from echo_control.models import ApiKeyList

app = make_resolver()


@app.get("/api/api-keys", security=SESSION, tags=["API keys"])
def list_api_keys(
    user_id: ActingUserId = None,
) -> ApiKeyList:
    return keys.list_keys(auth.acting_user(user_caller(app), user_id))


lambda_handler = entrypoint(app)
