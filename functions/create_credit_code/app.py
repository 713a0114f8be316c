"""POST /api/credit-codes — an admin makes a credit code: a promotional grant for up to maxUses users."""

from typing import Annotated

from echo_control import credit_codes
from echo_control.errors import Forbidden
from echo_control.http import SESSION, Body, Response, entrypoint, json_response, make_resolver, user_caller
from echo_control.models import CreditCodeCreate, CreditCodeOut

app = make_resolver()


@app.post(
    "/api/credit-codes",
    security=SESSION,
    tags=["Credit codes"],
    responses={201: {"description": "Created", "content": {"application/json": {"model": CreditCodeOut}}}},
)
def create_credit_code(body: Annotated[CreditCodeCreate, Body()]) -> Response[CreditCodeOut]:
    who = user_caller(app)
    if not who.is_admin:
        raise Forbidden("Only admins may make credit codes")
    return json_response(credit_codes.create_code(who.user_id, body), 201)


lambda_handler = entrypoint(app)
