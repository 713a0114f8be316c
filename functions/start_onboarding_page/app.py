"""POST /earnings/onboarding — the earnings page's "Set up payouts": to Stripe's Connect onboarding (or the mock)."""

from echo_control import pages, payouts
from echo_control.http import Response, entrypoint

app = pages.page_resolver()


@app.post("/earnings/onboarding", include_in_schema=False)
def start_onboarding_page() -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    with pages.form_errors(back="/earnings", form="onboarding", values=fields):
        link = payouts.onboarding_link(who.user_id, who.email, base_url=pages.base_url(app), return_path="/earnings")
    return pages.redirect(link.url)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
