"""PUT /api/api-keys/{id} — rename a key, or set, change or remove its spend limit."""

from typing import Annotated

from echo_control import keys
from echo_control.http import SESSION, Body, Path, entrypoint, make_resolver, user_caller
from echo_control.models import NO_NUL, ApiKeyOut, ApiKeyUpdate

app = make_resolver()


@app.put("/api/api-keys/<id>", security=SESSION, tags=["API keys"])
def update_api_key(
    id: Annotated[str, Path(max_length=64, pattern=NO_NUL)], body: Annotated[ApiKeyUpdate, Body()]
) -> ApiKeyOut:
    return keys.update_key(user_caller(app).user_id, id, body)


lambda_handler = entrypoint(app)
