"""POST /balance/auto-top-up — the balance page's automatic top-up form: on or off, threshold, amount, monthly limit."""

from echo_control import auto_top_up, pages
from echo_control.http import Response, entrypoint
from echo_control.models import AutoTopUpIn

app = pages.page_resolver()


@app.post("/balance/auto-top-up", include_in_schema=False)
def set_auto_top_up_page() -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    with pages.form_errors(back="/balance", form="auto_top_up", values=fields):
        body = pages.parse_form(
            AutoTopUpIn,
            {
                "enabled": fields.get("enabled") == "on",
                **{name: fields[name] for name in ("threshold", "amount", "monthlyLimit") if name in fields},
            },
        )
        now = auto_top_up.configure(who.user_id, body)
    if now.enabled:
        said = (
            f"Auto top-up is on: when what you can spend goes below {pages.usd(now.threshold)}, your card is charged "
            f"{pages.usd(now.amount)}, at most {pages.usd(now.monthly_limit)} a month."
        )
    else:
        said = "Auto top-up is off: your card is not charged."
    flash = pages.leave_flash(app, notice=said, notice_kind="ok", notice_form="auto_top_up")
    return pages.redirect(pages.at_notice("/balance"), cookie=flash)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
