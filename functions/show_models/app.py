"""GET /models — the priced models with their prices per million tokens, searchable (anyone; ?q= filters)."""

from typing import Annotated

from echo_control import pages, pricing
from echo_control.http import Query, Response, entrypoint

app = pages.page_resolver()


@app.get("/models", include_in_schema=False)
def show_models(
    q: Annotated[str | None, Query(max_length=100)] = None, page: Annotated[int, Query(ge=1, le=100_000)] = 1
) -> Response[str]:
    who = pages.page_caller(app)
    listed = pricing.models(q, page)
    return pages.render_page(
        app,
        "models.html",
        active="models",
        user=pages.user_view(who) if who else None,
        models=listed.models,
        listed=listed,
        source=listed.source,
        q=(q or "").strip(),
    )


lambda_handler = entrypoint(app)
