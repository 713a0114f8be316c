"""POST /balance/redeem — redeem a credit code from the balance page (post/redirect/get); a refused code says why."""

from echo_control import credit_codes, pages
from echo_control.http import Response, entrypoint
from echo_control.models import CreditCodeRedeem

app = pages.page_resolver()


@app.post("/balance/redeem", include_in_schema=False)
def redeem_credit_code_page() -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    with pages.form_errors(back="/balance", form="redeem", values=fields):
        body = pages.parse_form(CreditCodeRedeem, {"code": fields.get("code")})
        redeemed = credit_codes.redeem(who.user_id, body.code)
    until = f", usable until {redeemed.expires_at:%Y-%m-%d %H:%M} UTC" if redeemed.expires_at else ""
    said = f"Code redeemed: {pages.usd(redeemed.amount)} added to your credits{until}."
    flash = pages.leave_flash(app, notice=said, notice_kind="ok", notice_form="redeem")
    return pages.redirect(pages.at_notice("/balance"), cookie=flash)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
