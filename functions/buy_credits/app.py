"""POST /credits — the buy-credits form: creates a payment link and sends the person to checkout."""

from echo_control import pages, payments
from echo_control.http import Response, entrypoint
from echo_control.models import PaymentLinkIn

app = pages.page_resolver()


@app.post("/credits", include_in_schema=False)
def buy_credits() -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    return_path = pages.local_path(fields.pop("next", None), "/balance")  # the page the buyer comes back to
    with pages.form_errors(back=return_path, form="buy", values=fields):
        body = pages.parse_form(PaymentLinkIn, fields)
        link = payments.create_payment_link(who.user_id, body, base_url=pages.base_url(app), return_path=return_path)
    return pages.redirect(link.url)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
