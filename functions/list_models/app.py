"""GET /api/models — the priced models with USD per million tokens (public; from the genai-prices package's data),
a page at a time."""

from typing import Annotated

from echo_control import pricing
from echo_control.http import Query, entrypoint, make_resolver
from echo_control.models import MAX_MODELS_PAGE_SIZE, MODELS_PAGE_SIZE, NO_NUL, ModelPriceList

app = make_resolver()


@app.get("/api/models", security=[], tags=["Models"])
def list_models(
    q: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    page: Annotated[int, Query(ge=1, le=100_000, description="1 is the first; follow nextPage")] = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_MODELS_PAGE_SIZE)] = MODELS_PAGE_SIZE,
) -> ModelPriceList:
    return pricing.models(q, page, limit)


lambda_handler = entrypoint(app)
