"""GET /api/payments — the caller's payment history, newest first."""

from echo_control import auth, payments
from echo_control.http import SESSION, ActingUserId, entrypoint, make_resolver, user_caller
from echo_control.models import PaymentList

app = make_resolver()


@app.get("/api/payments", security=SESSION, tags=["Payments"])
def list_payments(
    user_id: ActingUserId = None,
) -> PaymentList:
    return payments.list_payments(auth.acting_user(user_caller(app), user_id))


lambda_handler = entrypoint(app)
