"""GET /connect/mock/{accountId} — the local stand-in for Stripe's Connect onboarding (only without a Stripe key)."""

from typing import Annotated

from echo_control import pages, payouts
from echo_control.http import Path, Query, Response, entrypoint, make_resolver

app = make_resolver()


@app.get("/connect/mock/<account_id>", include_in_schema=False)
def show_mock_onboarding(
    account_id: Annotated[str, Path(max_length=100)],
    return_path: Annotated[str | None, Query(alias="return", max_length=300)] = None,
) -> Response[str]:
    account = payouts.mock_account(account_id)
    return pages.render(
        "mock_onboarding.html",
        account=account,
        account_id=account_id,
        return_path=pages.local_path(return_path, "/earnings"),
        user=pages.page_caller(app),
    )


lambda_handler = entrypoint(app)
