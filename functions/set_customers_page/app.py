"""POST /apps/{id}/customers — the app page's switch: open the app to customers, or close it to new ones."""

from typing import Annotated

from echo_control import apps, pages
from echo_control.http import Path, Response, entrypoint
from echo_control.models import EchoAppUpdate

app = pages.page_resolver()


@app.post("/apps/<id>/customers", include_in_schema=False)
def set_customers_page(id: Annotated[str, Path(max_length=64)]) -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    with pages.form_errors(back=f"/apps/{id}", form="customers", values=fields):
        opened = fields.get("acceptsCustomers") == "true"
        updated = apps.update_app(who.user_id, id, EchoAppUpdate(accepts_customers=opened))
    said = "now takes customers: share its join link." if opened else "takes no new customers."
    notice = pages.leave_flash(app, notice=f"{updated.name} {said}", notice_kind="ok", notice_form="customers")
    return pages.redirect(pages.at_notice(f"/apps/{updated.id}"), cookie=notice)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
