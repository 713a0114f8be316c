"""POST /balance/card — the balance page's "Save a card": to Stripe Checkout in setup mode (or the mock)."""

from echo_control import auto_top_up, pages
from echo_control.http import Response, entrypoint

app = pages.page_resolver()


@app.post("/balance/card", include_in_schema=False)
def start_card_setup_page() -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    with pages.form_errors(back="/balance", form="auto_top_up", values=fields):
        link = auto_top_up.setup_link(who.user_id, who.email, base_url=pages.base_url(app), return_path="/balance")
    return pages.redirect(link.url)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
