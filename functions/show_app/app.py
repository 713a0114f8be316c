"""GET /apps/{id} — an app's usage chart, usage by model, keys and recent transactions."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path

from echo_control import pages
from echo_control.http import entrypoint

app = pages.page_resolver()


@app.get("/apps/<id>", include_in_schema=False)
def show_app(id: Annotated[str, Path(max_length=64)]) -> Response[str]:
    who = pages.signed_in(app)
    return pages.render_page(app, "app.html", **pages.app_page(who, id))


lambda_handler = entrypoint(app)
