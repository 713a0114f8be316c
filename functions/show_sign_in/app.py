"""GET /sign-in — dev mode: sign in with an email; oidc mode: off to the identity provider (oidc.begin); clerk
mode: a link to Clerk's hosted sign-in."""

from typing import Annotated

from echo_control import apps, config, oidc, pages
from echo_control.http import Query, Response, entrypoint

app = pages.page_resolver()


@app.get("/sign-in", include_in_schema=False)
def show_sign_in(
    next_path: Annotated[str | None, Query(alias="next", max_length=pages.MAX_LOCAL_PATH)] = None,
    signed_out: Annotated[str | None, Query(alias="signedOut", max_length=10)] = None,
) -> Response[str]:
    settings = config.settings()
    next_path = pages.local_path(next_path, "/dashboard")
    # After signing out, a button instead: the provider would sign the person straight back in.
    if settings.auth_mode == "oidc" and signed_out is None:
        started = oidc.begin(pages.base_url(app), next_path)
        state = pages.cookie(oidc.STATE_COOKIE, started.state, secure=pages.is_https(app), max_age=oidc.SIGN_IN_SECONDS)
        return pages.redirect(started.authorization_url, cookie=state)
    return pages.render_page(
        app,
        "sign_in.html",
        mode=settings.auth_mode,
        next=next_path,
        clerk_sign_in_url=settings.clerk_sign_in_url,
        signed_out=signed_out is not None,
        joining=apps.joining_app_name(next_path),
        user=None,
    )


lambda_handler = entrypoint(app)
