"""GET /apps/{id} — an app's page: for its owner usage, keys, customers and recent calls; for a customer their own."""

from typing import Annotated

from echo_control import pages
from echo_control.http import Path, Response, entrypoint

app = pages.page_resolver()


@app.get("/apps/<id>", include_in_schema=False)
def show_app(id: Annotated[str, Path(max_length=64)]) -> Response[str]:
    return pages.app_page(app, pages.signed_in(app), id)


lambda_handler = entrypoint(app)
