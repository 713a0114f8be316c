"""GET /api/models — the priced models with USD per million tokens (public; from the genai-prices package's data)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from echo_control import pricing
from echo_control.http import entrypoint, make_resolver
from echo_control.models import NO_NUL, ModelPriceList

app = make_resolver()


@app.get("/api/models", security=[], tags=["Models"])
def list_models(q: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None) -> ModelPriceList:
    return pricing.models(q)


lambda_handler = entrypoint(app)
