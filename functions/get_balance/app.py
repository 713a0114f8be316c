"""GET /api/balance — balance, total paid and total spent, for a user session or an API key (?echoAppId= adds
the app, as the seed's SDK asks; an API key's own app is added by default)."""

from typing import Annotated, Any

from echo_control import apps, auth
from echo_control.http import JSON, SESSION_OR_API_KEY, ActingUserId, Query, Response, caller, entrypoint, make_resolver
from echo_control.models import NO_NUL, AppBalanceOut

app = make_resolver()


@app.get(
    "/api/balance",
    security=SESSION_OR_API_KEY,
    tags=["Balance"],
    responses={
        200: {
            "description": "The user's balance; with an app (?echoAppId=, or the API key's), also echoAppId, "
            "echoAppName and the app's part of the user's money (app.totalPaid, app.totalSpent)",
            "content": {"application/json": {"model": AppBalanceOut}},
        },
        404: {"description": "The app is not one the user owns or uses (for an API key: not its own)"},
    },
)
def get_balance(
    user_id: ActingUserId = None,
    echo_app_id: Annotated[
        str | None,
        Query(alias="echoAppId", max_length=64, pattern=NO_NUL, description="The app whose part to add"),
    ] = None,
) -> Response[dict[str, Any]]:
    who = caller(app)
    balance = apps.balance(who, auth.acting_user(who, user_id), echo_app_id)
    return Response(200, JSON, balance.model_dump(mode="json"))  # as its own class: with the app when there is one


lambda_handler = entrypoint(app)
