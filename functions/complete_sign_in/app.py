"""GET /auth/callback — where the identity provider sends the browser back (oidc mode): checks the state,
exchanges the code, verifies the ID token (oidc.complete) and starts our own revocable session."""

from echo_control import auth, config, oidc, pages
from echo_control.errors import NotFound
from echo_control.http import Response, entrypoint

app = pages.page_resolver()


@app.get(oidc.CALLBACK_PATH, include_in_schema=False)
def complete_sign_in() -> Response[str]:
    if config.settings().auth_mode != "oidc":
        raise NotFound("There is no page at this address")
    secure = pages.is_https(app)
    query = {k: v for k, v in (app.current_event.query_string_parameters or {}).items() if isinstance(v, str)}
    signed_in = oidc.complete(pages.base_url(app), query, pages.cookie_value(app, oidc.STATE_COOKIE))
    cookies = [
        pages.session_cookie(auth.start_session(signed_in.user["id"]), secure=secure),
        pages.cookie(oidc.STATE_COOKIE, "", secure=secure, max_age=0),
    ]
    return pages.redirect(pages.local_path(signed_in.next_path, "/dashboard"), cookie=cookies)


lambda_handler = entrypoint(app)
