"""POST /apps/{id}/keys/{key_id}/revoke — revoke a key from the app page."""

from typing import Annotated

from echo_control import apps, keys, pages
from echo_control.http import Path, Response, entrypoint

app = pages.page_resolver()


@app.post("/apps/<id>/keys/<key_id>/revoke", include_in_schema=False)
def revoke_key_page(
    id: Annotated[str, Path(max_length=64)],
    key_id: Annotated[str, Path(max_length=64)],
) -> Response[str]:
    who = pages.signed_in(app)
    pages.form(app)
    owned = apps.used_app(who.user_id, id)  # the owner's app, or one the person is a customer of
    with pages.form_errors(back=f"/apps/{owned['id']}", form="revoke_key", values={}):
        revoked = keys.revoke_key(who.user_id, key_id)
    said = f"Key …{revoked.last4} is revoked: calls with it are refused."
    notice = pages.leave_flash(app, notice=said, notice_kind="ok", notice_form="revoke_key")
    return pages.redirect(pages.at_notice(f"/apps/{owned['id']}"), cookie=notice)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
