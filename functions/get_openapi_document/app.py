"""GET /api/openapi.json — the OpenAPI 3.1 document of this API (public)."""

from typing import Any

from echo_control import openapi
from echo_control.http import entrypoint, make_resolver

app = make_resolver()


@app.get("/api/openapi.json", include_in_schema=False, cache_control="public, max-age=300")
def get_openapi_document() -> dict[str, Any]:
    return openapi.document(app.current_event.raw_event)


lambda_handler = entrypoint(app)
