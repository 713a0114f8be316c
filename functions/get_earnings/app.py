"""GET /api/earnings — the caller's earnings as an app owner: available, pending, paid out, lifetime, per app."""

from echo_control import earnings
from echo_control.http import SESSION, entrypoint, make_resolver, user_caller
from echo_control.models import EarningsOut

app = make_resolver()


@app.get("/api/earnings", security=SESSION, tags=["Earnings"])
def get_earnings() -> EarningsOut:
    return earnings.earnings(user_caller(app).user_id)


lambda_handler = entrypoint(app)
