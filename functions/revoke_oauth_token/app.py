"""POST /oauth/revoke — Sign in with Echo: revoke an access token, or a refresh token and its whole grant (RFC 7009)."""

from typing import Annotated

from echo_control import oauth, origins
from echo_control.http import Form, Response, entrypoint, oauth_answer, oauth_form, oauth_resolver
from echo_control.models import OAuthErrorOut

app = oauth_resolver()


@app.post(
    "/oauth/revoke",
    tags=["Sign in with Echo"],
    description=(
        "RFC 7009. An access token stops at once; a refresh token ends its grant (every token it gave). "
        "200 with `{}` whether or not the token was known, so nobody can probe for tokens."
    ),
    responses={
        200: {
            "description": "Revoked, or never valid",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
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
def revoke_oauth_token(
    token: Annotated[str | None, Form(description="The access or refresh token")] = None,
    client_id: Annotated[str | None, Form(description="The app's id")] = None,
    token_type_hint: Annotated[str | None, Form(description="access_token or refresh_token")] = None,
) -> Response[str]:  # the body is Authlib's JSON (documented above)
    request = oauth.Request(
        "POST", f"{origins.public_base_url(app.current_event.raw_event)}/oauth/revoke", oauth_form(app)
    )
    answer = oauth.revoke(request)
    return oauth_answer(answer.status, answer.body, answer.headers)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
