"""POST /apps/{id}/redirect-uris — the app page's Sign in with Echo form: the app's redirect URIs, one per line."""

from typing import Annotated

from echo_control import apps, pages
from echo_control.http import Path, Response, entrypoint
from echo_control.models import EchoAppUpdate

app = pages.page_resolver()


@app.post("/apps/<id>/redirect-uris", include_in_schema=False)
def set_redirect_uris_page(id: Annotated[str, Path(max_length=64)]) -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    with pages.form_errors(back=f"/apps/{id}", form="redirect_uris", values=fields):
        listed = [line.strip() for line in fields.get("redirectUris", "").splitlines() if line.strip()]
        updated = apps.update_app(who.user_id, id, pages.parse_form(EchoAppUpdate, {"redirectUris": listed}))
    said = f"{len(updated.redirect_uris)} redirect URIs saved." if updated.redirect_uris else "No redirect URIs now."
    notice = pages.leave_flash(app, notice=said, notice_kind="ok")
    return pages.redirect(f"/apps/{updated.id}", cookie=notice)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
