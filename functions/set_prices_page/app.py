"""POST /apps/{id}/prices — the app page's prices forms: allowed models, one model's price, removing a price."""

from typing import Annotated

from echo_control import apps, pages
from echo_control.http import Path, Response, entrypoint

app = pages.page_resolver()


@app.post("/apps/<id>/prices", include_in_schema=False)
def set_prices_page(id: Annotated[str, Path(max_length=64)]) -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app, max_bytes=pages.MAX_PRICES_FORM_BYTES)
    owned = apps.owned_app(who.user_id, id)
    back, form = pages.at_notice(f"/apps/{owned['id']}"), f"prices_{fields.get('action', '')}"
    with pages.form_errors(back=back, form=form, values=fields):
        said = pages.edit_prices(who, owned["id"], fields)
    return pages.redirect(back, cookie=pages.leave_flash(app, notice=said, notice_kind="ok", notice_form=form))


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
