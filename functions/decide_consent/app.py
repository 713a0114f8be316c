"""POST /oauth/authorize — Sign in with Echo: Allow (back to the app with a code) or Deny (with access_denied)."""

from echo_control import oauth, pages
from echo_control.errors import BadRequest
from echo_control.http import Response, entrypoint

app = pages.page_resolver()


@app.post("/oauth/authorize", include_in_schema=False)
def decide_consent() -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)  # same origin only: another site cannot make the decision for the person
    decision = fields.pop("decision", None)
    if decision not in ("allow", "deny"):
        raise BadRequest("Choose Allow or Deny")
    request = oauth.Request("POST", f"{pages.base_url(app)}/oauth/authorize", list(fields.items()))
    answer = oauth.decide(request, who.user_id, allow=decision == "allow")
    if "Location" not in answer.headers:
        raise BadRequest(str(answer.body.get("error_description") or "This sign-in request is not valid"))
    return pages.redirect(answer.headers["Location"])


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
