"""POST /oauth/token — Sign in with Echo: a code and its PKCE verifier, or a refresh token, for new tokens."""

from typing import Annotated

from echo_control import oauth, origins
from echo_control.http import Form, Response, entrypoint, oauth_answer, oauth_form, oauth_resolver
from echo_control.models import OAuthErrorOut, TokenOut

app = oauth_resolver()


@app.post(
    "/oauth/token",
    tags=["Sign in with Echo"],
    description=(
        "RFC 6749 token endpoint for public clients (no secret; PKCE instead). `grant_type=authorization_code` with "
        "`code`, `redirect_uri`, `client_id` (the app's id) and `code_verifier`; `grant_type=refresh_token` with "
        "`refresh_token` and `client_id`. A code is good once, for 60 seconds; using it again revokes the tokens "
        "it gave. A refresh token is good for one refresh, which answers a new one; presenting a used one revokes "
        "the grant. Errors are RFC 6749's: invalid_request, invalid_client, invalid_grant, unsupported_grant_type."
    ),
    responses={
        200: {"description": "The tokens", "content": {"application/json": {"model": TokenOut}}},
        400: {
            "description": "An OAuth error (RFC 6749 5.2)",
            "content": {"application/json": {"model": OAuthErrorOut}},
        },
        415: {
            "description": "Not a form: invalid_request",
            "content": {"application/json": {"model": OAuthErrorOut}},
        },
    },
)
def issue_oauth_token(
    grant_type: Annotated[str | None, Form(description="authorization_code or refresh_token")] = None,
    client_id: Annotated[str | None, Form(description="The app's id")] = None,
    code: Annotated[str | None, Form(description="authorization_code: the code from the redirect")] = None,
    redirect_uri: Annotated[str | None, Form(description="authorization_code: as in the request")] = None,
    code_verifier: Annotated[str | None, Form(description="authorization_code: the PKCE secret (43-128)")] = None,
    refresh_token: Annotated[str | None, Form(description="refresh_token: the latest refresh token")] = None,
) -> Response[str]:  # the body is Authlib's JSON (documented above)
    # Authlib reads the form itself (the parameters above describe it), checking each rule RFC 6749 states.
    request = oauth.Request(
        "POST", f"{origins.public_base_url(app.current_event.raw_event)}/oauth/token", oauth_form(app)
    )
    answer = oauth.token(request)
    return oauth_answer(answer.status, answer.body, answer.headers)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
