"""GET /earnings — what the person's apps earned: available, pending, paid out, per day and per app; payouts."""

from typing import Annotated

from echo_control import pages
from echo_control.http import Query, Response, entrypoint

app = pages.page_resolver()
NOTICES = {
    "complete": ("Onboarding is finished: payouts are enabled as soon as Stripe confirms it.", "ok"),
    "return": ("Welcome back: payouts are enabled as soon as Stripe confirms your details.", "ok"),
    "refresh": ("The onboarding link expired; start again to get a fresh one.", ""),
}


@app.get("/earnings", include_in_schema=False)
def show_earnings(
    app_id: Annotated[str | None, Query(alias="app", max_length=64)] = None,
    onboarding: Annotated[str | None, Query(max_length=20)] = None,
) -> Response[str]:
    who = pages.signed_in(app)
    notice, kind = NOTICES.get(onboarding or "", (None, None))
    return pages.render_page(app, "earnings.html", **pages.earnings_page(who, app_id), notice=notice, notice_kind=kind)


lambda_handler = entrypoint(app)
