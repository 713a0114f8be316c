"""GET /api/api-keys — the caller's API keys (display prefix and last 4 only)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from echo_control import auth, keys
from echo_control.http import entrypoint, make_resolver, user_caller
from echo_control.models import ApiKeyList

app = make_resolver()


@app.get("/api/api-keys", tags=["API keys"])
def list_api_keys(user_id: Annotated[str | None, Query(alias="userId", max_length=64)] = None) -> ApiKeyList:
    return keys.list_keys(auth.acting_user(user_caller(app), user_id))


lambda_handler = entrypoint(app)
