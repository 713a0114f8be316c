"""GET /api/echo-apps/{id}/usage — usage by model and by day for a date range (default: the last 30 days)."""

from typing import Annotated

from echo_control import analytics
from echo_control.http import SESSION, Path, Query, entrypoint, make_resolver, user_caller
from echo_control.models import NO_NUL, DateOrTime, UsageOut

app = make_resolver()


@app.get("/api/echo-apps/<id>/usage", security=SESSION, tags=["Analytics"])
def get_app_usage(
    id: Annotated[str, Path(max_length=64, pattern=NO_NUL)],
    since: Annotated[DateOrTime | None, Query(alias="from")] = None,
    until: Annotated[DateOrTime | None, Query(alias="to")] = None,
) -> UsageOut:
    return analytics.app_usage(user_caller(app).user_id, id, since, until)


lambda_handler = entrypoint(app)
