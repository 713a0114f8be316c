"""GET /api/payouts — the caller's payouts, newest first."""

from echo_control import payouts
from echo_control.http import SESSION, entrypoint, make_resolver, user_caller
from echo_control.models import PayoutList

app = make_resolver()


@app.get("/api/payouts", security=SESSION, tags=["Earnings"])
def list_payouts() -> PayoutList:
    return payouts.list_payouts(user_caller(app).user_id)


lambda_handler = entrypoint(app)
