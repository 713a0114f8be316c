"""POST /sign-out — forget the session cookie."""

from aws_lambda_powertools.event_handler import Response

from echo_control import pages
from echo_control.http import entrypoint

app = pages.page_resolver()


@app.post("/sign-out", include_in_schema=False)
def sign_out() -> Response[str]:
    pages.form(app)
    return pages.redirect("/sign-in", cookie=pages.cleared_cookie(secure=pages.is_https(app)))


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
