"""POST /apps/{id}/keys/{key_id}/limit — set, change or remove a key's spend limit from the app page."""

from typing import Annotated

from echo_control import apps, keys, pages
from echo_control.http import Path, Response, entrypoint
from echo_control.models import ApiKeyUpdate

app = pages.page_resolver()


@app.post("/apps/<id>/keys/<key_id>/limit", include_in_schema=False)
def set_key_limit_page(
    id: Annotated[str, Path(max_length=64)],
    key_id: Annotated[str, Path(max_length=64)],
) -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    owned = apps.owned_app(who.user_id, id)
    # One form per key: its own name, so the message and what was typed return to that key's row.
    form = f"key_limit:{key_id}"
    with pages.form_errors(back=f"/apps/{owned['id']}", form=form, values=fields):
        # An empty amount removes the limit.
        body = pages.parse_form(
            ApiKeyUpdate, {"spendLimit": fields.get("spendLimit"), "limitPeriod": fields.get("limitPeriod")}
        )
        updated = keys.update_key(who.user_id, key_id, body)
    if updated.spend_limit is None:
        said = f"Key …{updated.last4} has no spend limit."
    else:
        said = f"Key …{updated.last4} may spend ${updated.spend_limit:,.2f} per {updated.limit_period}."
    notice = pages.leave_flash(app, notice=said.replace("per total", "in total"), notice_kind="ok", notice_form=form)
    return pages.redirect(pages.at_notice(f"/apps/{owned['id']}"), cookie=notice)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
