"""POST /dashboard/apps — the dashboard's create-app form."""

from echo_control import apps, pages
from echo_control.http import Response, entrypoint
from echo_control.models import EchoAppCreate

app = pages.page_resolver()


@app.post("/dashboard/apps", include_in_schema=False)
def create_app_page() -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    with pages.form_errors(back="/dashboard", form="create_app", values=fields):
        created = apps.create_app(who.user_id, pages.parse_form(EchoAppCreate, fields))
    return pages.redirect(f"/apps/{created.id}")


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
