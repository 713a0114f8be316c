"""GET /api/balance — balance, total paid and total spent, for a user session or an API key."""

from echo_control import auth, ledger
from echo_control.http import SESSION_OR_API_KEY, ActingUserId, caller, entrypoint, make_resolver
from echo_control.models import BalanceOut

app = make_resolver()


@app.get("/api/balance", security=SESSION_OR_API_KEY, tags=["Balance"])
def get_balance(
    user_id: ActingUserId = None,
) -> BalanceOut:
    return ledger.get_balance(auth.acting_user(caller(app), user_id))


lambda_handler = entrypoint(app)
