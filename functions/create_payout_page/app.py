"""POST /earnings/payouts — the earnings page's payout form (its hidden key makes a double submit pay once)."""

import uuid

from echo_control import pages, payouts
from echo_control.errors import BadGateway
from echo_control.http import Response, entrypoint
from echo_control.models import PayoutCreate

app = pages.page_resolver()


@app.post("/earnings/payouts", include_in_schema=False)
def create_payout_page() -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    key = fields.pop("idempotencyKey", None) or str(uuid.uuid4())
    with pages.form_errors(back="/earnings", form="payout", values=fields):
        body = pages.parse_form(PayoutCreate, fields)
        try:
            paid, _ = payouts.request_payout(who.user_id, body, key)
        except BadGateway:  # the payout stays pending; the page says so and offers to ask again with the same key
            pending = "Stripe has not confirmed this payout yet: it is pending. Try again in a moment."
            retry = {"amount": format(body.amount, "f"), "key": key}
            notice = pages.leave_flash(app, notice=pending, notice_kind="bad", retry_payout=retry)
            return pages.redirect("/earnings", cookie=notice)
    said = {"paid": "is on its way to your account", "failed": "was refused by Stripe: it is back in available"}
    message = f"The payout of {pages.usd(paid.amount)} {said.get(paid.status, 'is ' + paid.status)}."
    flash = pages.leave_flash(app, notice=message, notice_kind="ok" if paid.status == "paid" else "bad")
    return pages.redirect("/earnings", cookie=flash)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
