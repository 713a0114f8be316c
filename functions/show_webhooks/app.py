"""GET /webhooks — the person's webhook endpoints (a new one's secret shown once), the form to add one, and the
low-balance alert."""

from echo_control import developer_webhooks, events, pages
from echo_control.http import Response, entrypoint

app = pages.page_resolver()


@app.get("/webhooks", include_in_schema=False)
def show_webhooks() -> Response[str]:
    who = pages.signed_in(app)
    return pages.render_page(
        app,
        "webhooks.html",
        active="webhooks",
        user=pages.user_view(who),
        webhooks=developer_webhooks.list_endpoints(who.user_id).webhooks,
        alerts=developer_webhooks.balance_alerts(who.user_id),
        event_types=events.TYPES,
    )


lambda_handler = entrypoint(app)
