"""POST /cli-auth — make a key for the chosen app, then back to /cli-auth, which shows it this once."""

from echo_control import keys, pages
from echo_control.http import Response, entrypoint
from echo_control.models import ApiKeyCreate

app = pages.page_resolver()


@app.post("/cli-auth", include_in_schema=False)
def create_cli_key_page() -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    with pages.form_errors(back="/cli-auth", form="cli_key", values=fields):
        created = keys.create_key(who.user_id, pages.parse_form(ApiKeyCreate, fields))
    shown_once = pages.leave_flash(app, new_key={"key": created.key, "name": created.name, "app": created.echo_app_id})
    return pages.redirect("/cli-auth", cookie=shown_once)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
