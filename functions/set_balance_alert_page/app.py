"""POST /webhooks/balance-alert — set or clear the low-balance threshold from the webhooks page."""

from echo_control import developer_webhooks, pages
from echo_control.http import Response, entrypoint
from echo_control.models import BalanceAlertsIn

app = pages.page_resolver()


@app.post("/webhooks/balance-alert", include_in_schema=False)
def set_balance_alert_page() -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    with pages.form_errors(back="/webhooks", form="balance_alert", values=fields):
        body = pages.parse_form(BalanceAlertsIn, {"lowBalanceThreshold": fields.get("lowBalanceThreshold")})
        alerts = developer_webhooks.set_balance_alerts(who.user_id, body)
    if alerts.low_balance_threshold is None:
        said = "Low-balance alerts are off."
    else:
        said = f"balance.low is sent when what you can spend goes below {pages.usd(alerts.low_balance_threshold)}."
    return pages.redirect("/webhooks", cookie=pages.leave_flash(app, notice=said, notice_kind="ok"))


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
