"""GET /webhooks/{id} — one endpoint's deliveries, each with its attempts (time, status code, what came back)."""

from typing import Annotated

from echo_control import developer_webhooks, pages
from echo_control.http import Path, Response, entrypoint

app = pages.page_resolver()


@app.get("/webhooks/<id>", include_in_schema=False)
def show_webhook(id: Annotated[str, Path(max_length=64)]) -> Response[str]:
    who = pages.signed_in(app)
    endpoint, deliveries = developer_webhooks.deliveries_with_attempts(who.user_id, id)
    return pages.render_page(
        app, "webhook.html", active="webhooks", user=pages.user_view(who), webhook=endpoint, deliveries=deliveries
    )


lambda_handler = entrypoint(app)
