"""POST /join/{id} — join an app open to customers: the person's key for it, shown once on the app's page."""

from typing import Annotated

from echo_control import keys, pages
from echo_control.http import Path, Response, entrypoint
from echo_control.models import ApiKeyCreate

app = pages.page_resolver()


@app.post("/join/<id>", include_in_schema=False)
def join_app_page(id: Annotated[str, Path(max_length=64)]) -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    with pages.form_errors(back=f"/join/{id}", form="join", values=fields):
        body = pages.parse_form(ApiKeyCreate, {"echoAppId": id, **fields})
        created = keys.create_key(who.user_id, body)
    shown_once = pages.leave_flash(app, new_key={"key": created.key, "name": created.name})
    return pages.redirect(f"/apps/{created.echo_app_id}", cookie=shown_once)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
