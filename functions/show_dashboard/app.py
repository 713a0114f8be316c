"""GET /dashboard — every app with its usage, the apps one uses, the balance at a glance, create an app, buy credits."""

from typing import Annotated

from echo_control import apps, developer_webhooks, ledger, pages
from echo_control.http import Query, Response, entrypoint

app = pages.page_resolver()


@app.get("/dashboard", include_in_schema=False)
def show_dashboard(payment: Annotated[str | None, Query(max_length=20)] = None) -> Response[str]:
    who = pages.signed_in(app)
    return pages.render_page(
        app,
        "dashboard.html",
        active="dashboard",
        user=pages.user_view(who),
        apps=apps.list_apps(who.user_id).echo_apps,
        apps_used=apps.apps_used(who.user_id),
        balance=ledger.get_balance(who.user_id),
        credited=ledger.adjustments_total(who.user_id),
        next_path="/dashboard",
        disabled_webhooks=developer_webhooks.disabled_endpoints(who.user_id),
    )


lambda_handler = entrypoint(app)
