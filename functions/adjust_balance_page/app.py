"""POST /balance/adjust — an admin adjusts a user's balance, found by email, with a reason."""

from echo_control import db, ledger, pages
from echo_control.errors import Forbidden, NotFound
from echo_control.http import Response, entrypoint
from echo_control.models import BalanceAdjust

app = pages.page_resolver()


@app.post("/balance/adjust", include_in_schema=False)
def adjust_balance_page() -> Response[str]:
    who = pages.signed_in(app)
    if not who.is_admin:
        raise Forbidden("Only admins may adjust balances")
    fields = pages.form(app)
    with pages.form_errors(back="/balance", form="adjust", values=fields):
        target = db.user_by_email(fields.pop("email", ""))
        if target is None:
            raise NotFound("No user has that email")
        ledger.adjust_balance(pages.parse_form(BalanceAdjust, {**fields, "userId": str(target["id"])}))
    return pages.redirect("/balance?payment=adjusted")


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
