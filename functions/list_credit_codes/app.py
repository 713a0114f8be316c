"""GET /api/credit-codes — an admin lists the credit codes with their uses."""

from echo_control import credit_codes
from echo_control.errors import Forbidden
from echo_control.http import SESSION, entrypoint, make_resolver, user_caller
from echo_control.models import CreditCodeList

app = make_resolver()


@app.get("/api/credit-codes", security=SESSION, tags=["Credit codes"])
def list_credit_codes() -> CreditCodeList:
    if not user_caller(app).is_admin:
        raise Forbidden("Only admins may list credit codes")
    return credit_codes.list_codes()


lambda_handler = entrypoint(app)
