"""POST /sign-in — dev mode: sign in with an email; sets the session cookie."""

from urllib.parse import urlencode

from echo_control import auth, pages
from echo_control.http import Response, entrypoint
from echo_control.models import DevSessionIn

app = pages.page_resolver()


@app.post("/sign-in", include_in_schema=False)
def sign_in() -> Response[str]:
    fields = pages.form(app)
    next_path = pages.local_path(fields.get("next"), "/dashboard")
    with pages.form_errors(back="/sign-in?" + urlencode({"next": next_path}), form="sign_in", values=fields):
        body = pages.parse_form(DevSessionIn, {"email": fields.get("email", "")})
        token, _ = auth.issue_dev_session(body.email)
    return pages.redirect(next_path, cookie=pages.session_cookie(token, secure=pages.is_https(app)))


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
