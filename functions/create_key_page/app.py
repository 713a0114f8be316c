"""POST /apps/{id}/keys — create a key and show it, this once, on the app page."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path

from echo_control import keys, pages
from echo_control.http import entrypoint
from echo_control.models import ApiKeyCreate

app = pages.page_resolver()


@app.post("/apps/<id>/keys", include_in_schema=False)
def create_key_page(id: Annotated[str, Path(max_length=64)]) -> Response[str]:
    who = pages.signed_in(app)
    body = pages.parse_form(ApiKeyCreate, {"echoAppId": id, **pages.form(app)})
    created = keys.create_key(who.user_id, id, body.name, body.expires_at)
    return pages.render("app.html", **pages.app_page(who, id), new_key=created)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
