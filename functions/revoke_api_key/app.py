"""DELETE /api/api-keys/{id} — revoke a key; it is refused from the very next request."""

from typing import Annotated

from echo_control import keys
from echo_control.http import SESSION, Path, entrypoint, make_resolver, user_caller
from echo_control.models import NO_NUL, ApiKeyOut

app = make_resolver()


@app.delete("/api/api-keys/<id>", security=SESSION, tags=["API keys"])
def revoke_api_key(id: Annotated[str, Path(max_length=64, pattern=NO_NUL)]) -> ApiKeyOut:
    return keys.revoke_key(user_caller(app).user_id, id)


lambda_handler = entrypoint(app)
