"""GET /api/balance/auto-top-up — automatic top-up: the settings, this month's charges, the card, the last error."""

from echo_control import auto_top_up
from echo_control.http import SESSION, entrypoint, make_resolver, user_caller
from echo_control.models import AutoTopUpOut

app = make_resolver()


@app.get("/api/balance/auto-top-up", security=SESSION, tags=["Balance"])
def get_auto_top_up() -> AutoTopUpOut:
    return auto_top_up.settings(user_caller(app).user_id)


lambda_handler = entrypoint(app)
