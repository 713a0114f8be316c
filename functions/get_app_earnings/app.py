"""GET /api/echo-apps/{id}/earnings — an app's earnings by day and by model (default: the last 30 days), owner only."""

from typing import Annotated

from echo_control import earnings
from echo_control.http import SESSION, Path, Query, entrypoint, make_resolver, user_caller
from echo_control.models import NO_NUL, AppEarningsOut, DateOrTime

app = make_resolver()


@app.get("/api/echo-apps/<id>/earnings", security=SESSION, tags=["Earnings"])
def get_app_earnings(
    id: Annotated[str, Path(max_length=64, pattern=NO_NUL)],
    since: Annotated[DateOrTime | None, Query(alias="from")] = None,
    until: Annotated[DateOrTime | None, Query(alias="to")] = None,
) -> AppEarningsOut:
    return earnings.app_earnings(user_caller(app).user_id, id, since, until)


lambda_handler = entrypoint(app)
