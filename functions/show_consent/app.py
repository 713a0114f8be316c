"""GET /oauth/authorize — Sign in with Echo: the consent page naming the app, its owner, markup and what it may do."""

from echo_control import connections, oauth, pages
from echo_control.http import Response, entrypoint

app = pages.page_resolver()


@app.get("/oauth/authorize", include_in_schema=False)
def show_consent() -> Response[str]:
    query = app.current_event.multi_value_query_string_parameters or {}
    pairs = [(name, value) for name, values in query.items() for value in values]
    checked = oauth.consent(oauth.Request("GET", f"{pages.base_url(app)}/oauth/authorize", pairs))
    if isinstance(checked, oauth.Answer):  # an error the app's registered redirect URI should hear about
        return pages.redirect(checked.headers["Location"])
    who = pages.signed_in(app)  # not signed in: sign-in first, which comes back to this very request
    return pages.render(
        "consent.html",
        headers=pages.form_may_lead_to(checked.redirect_origin),
        user=pages.user_view(who),
        parameters=checked.parameters,
        redirect_origin=checked.redirect_origin,
        **connections.consent_view(who.user_id, checked.app),
    )


lambda_handler = entrypoint(app)
