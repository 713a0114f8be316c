"""GET /api/docs — Swagger UI over the OpenAPI document (public)."""

from echo_control import openapi
from echo_control.http import Response, entrypoint, make_resolver

app = make_resolver()

# Swagger UI runs inline script and shows inline SVG; nothing else is allowed in.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "public, max-age=300",
}


@app.get("/api/docs", include_in_schema=False)
def show_api_docs() -> Response[str]:
    page = openapi.docs_page(app.current_event.raw_event)
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=page, headers=HEADERS)


lambda_handler = entrypoint(app)
