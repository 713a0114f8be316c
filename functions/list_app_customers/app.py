"""GET /api/echo-apps/{id}/customers — the app's customers with their calls and spend (owner only)."""

from typing import Annotated

from echo_control import apps
from echo_control.http import SESSION, Path, entrypoint, make_resolver, user_caller
from echo_control.models import NO_NUL, CustomerList

app = make_resolver()


@app.get("/api/echo-apps/<id>/customers", security=SESSION, tags=["Echo apps"])
def list_app_customers(id: Annotated[str, Path(max_length=64, pattern=NO_NUL)]) -> CustomerList:
    return apps.customers(user_caller(app).user_id, id)


lambda_handler = entrypoint(app)
