"""ANY /{proxy+} — every address no other route claims: the HTML 404 page, or the API's JSON 404 under /api/."""

from typing import Any

from echo_control import pages
from echo_control.http import Response, entrypoint, error_response

app = pages.page_resolver()


@app.not_found
def show_not_found(exc: Exception) -> Response[Any]:
    if app.current_event.path.startswith("/api/"):
        return error_response(404, "not_found", "No such route")
    return pages.not_found_page(app)


lambda_handler = entrypoint(app, json_body=False)  # any method, any body: it only answers 404
