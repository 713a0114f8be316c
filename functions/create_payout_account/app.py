"""POST /api/payouts/account — an onboarding link for the caller's Stripe Connect (Express) account, made or reused."""

from echo_control import origins, payouts
from echo_control.http import SESSION, entrypoint, make_resolver, user_caller
from echo_control.models import PayoutAccountOut

app = make_resolver()


@app.post(
    "/api/payouts/account",
    security=SESSION,
    tags=["Earnings"],
    responses={
        200: {"description": "The onboarding link", "content": {"application/json": {"model": PayoutAccountOut}}},
        502: {"description": "Stripe could not start onboarding; try again"},
    },
)
def create_payout_account() -> PayoutAccountOut:
    who = user_caller(app)
    base_url = origins.public_base_url(app.current_event.raw_event)
    return payouts.onboarding_link(who.user_id, who.email, base_url=base_url)


lambda_handler = entrypoint(app)
