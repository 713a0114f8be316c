"""POST /sign-out — ends the session (its token is refused from now on, as cookie and as bearer) and forgets the
cookie."""

from echo_control import auth, config, pages
from echo_control.http import Response, entrypoint

app = pages.page_resolver()


@app.post("/sign-out", include_in_schema=False)
def sign_out() -> Response[str]:
    pages.form(app)
    if (token := pages.session_token(app)) is not None:
        auth.end_session(token)
    # With a provider, /sign-in would send the person straight back in (the provider remembers them): say so instead.
    after = "/sign-in?signedOut=1" if config.settings().auth_mode == "oidc" else "/sign-in"
    return pages.redirect(after, cookie=pages.cleared_cookie(secure=pages.is_https(app)))


lambda_handler = entrypoint(app)
