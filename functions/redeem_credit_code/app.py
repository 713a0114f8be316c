"""POST /api/credit-codes/redeem — a user redeems a credit code once: a grant on their balance."""

from typing import Annotated

from echo_control import credit_codes
from echo_control.http import SESSION, Body, Response, entrypoint, json_response, make_resolver, user_caller
from echo_control.models import CreditCodeRedeem, CreditCodeRedeemed

app = make_resolver()


@app.post(
    "/api/credit-codes/redeem",
    security=SESSION,
    tags=["Credit codes"],
    responses={
        201: {"description": "Redeemed", "content": {"application/json": {"model": CreditCodeRedeemed}}},
        404: {"description": "code_not_found"},
        409: {"description": "code_already_redeemed: each user redeems a code once"},
        410: {"description": "code_exhausted (maxUses reached) or code_expired"},
    },
)
def redeem_credit_code(body: Annotated[CreditCodeRedeem, Body()]) -> Response[CreditCodeRedeemed]:
    return json_response(credit_codes.redeem(user_caller(app).user_id, body.code), 201)


lambda_handler = entrypoint(app)
