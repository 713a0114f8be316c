"""PUT /api/echo-apps/{id}/prices — replace the models the app allows and its own prices (owner only)."""

from typing import Annotated

from echo_control import apps
from echo_control.http import SESSION, Body, Path, entrypoint, make_resolver, user_caller
from echo_control.models import NO_NUL, AppPrices

app = make_resolver()


@app.put(
    "/api/echo-apps/<id>/prices",
    security=SESSION,
    tags=["Echo apps"],
    responses={
        200: {"description": "The app's prices as now stored", "content": {"application/json": {"model": AppPrices}}}
    },
)
def put_app_prices(
    id: Annotated[str, Path(max_length=64, pattern=NO_NUL)],
    body: Annotated[AppPrices, Body()],
) -> AppPrices:
    return apps.set_app_prices(user_caller(app).user_id, id, body)


lambda_handler = entrypoint(app)
