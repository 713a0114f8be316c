"""POST /admin/credit-codes — an admin makes a credit code from the codes page, which then shows it."""

from echo_control import credit_codes, pages
from echo_control.errors import Forbidden
from echo_control.http import Response, entrypoint
from echo_control.models import CreditCodeCreate

app = pages.page_resolver()


@app.post("/admin/credit-codes", include_in_schema=False)
def create_credit_code_page() -> Response[str]:
    who = pages.signed_in(app)
    if not who.is_admin:
        raise Forbidden("Only admins may make credit codes")
    fields = pages.form(app)
    with pages.form_errors(back="/admin/credit-codes", form="create_code", values=fields):
        expires_on = fields.get("expiresOn")  # a date field: the code stops at the start of that day, UTC
        # the API takes whole numbers only as JSON integers; a form's are digits
        whole = {
            k: int(v) if v.isdecimal() and len(v) <= 9 else v
            for k, v in fields.items()
            if k in ("maxUses", "creditDays")
        }
        body = pages.parse_form(
            CreditCodeCreate,
            {
                "amount": fields.get("amount"),
                "maxUses": whole.get("maxUses"),
                "expiresAt": f"{expires_on}T00:00:00Z" if expires_on else None,
                "creditDays": whole.get("creditDays"),
            },
        )
        created = credit_codes.create_code(who.user_id, body)
    flash = pages.leave_flash(
        app, new_code=created.code, notice=f"Code {created.code} made.", notice_kind="ok", notice_form="create_code"
    )
    return pages.redirect(pages.at_notice("/admin/credit-codes"), cookie=flash)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
