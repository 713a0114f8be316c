"""POST /credits — the buy-credits form: creates a payment link and sends the person to checkout."""

from aws_lambda_powertools.event_handler import Response

from echo_control import pages, payments
from echo_control.http import entrypoint
from echo_control.models import PaymentLinkIn

app = pages.page_resolver()


@app.post("/credits", include_in_schema=False)
def buy_credits() -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    back = pages.local_path(fields.pop("next", None), "/balance")
    with pages.form_errors(back=back, form="buy", values=fields):
        link = payments.create_payment_link(who.user_id, pages.parse_form(PaymentLinkIn, fields))
    return pages.redirect(link.url)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
