"""GET /checkout/mock/{sessionId} — the local stand-in for Stripe Checkout (only without a Stripe key)."""

from typing import Annotated

from echo_control import pages, payments
from echo_control.http import Path, Query, Response, entrypoint, make_resolver

app = make_resolver()


@app.get("/checkout/mock/<session_id>", include_in_schema=False)
def show_mock_checkout(
    session_id: Annotated[str, Path(max_length=100)],
    return_path: Annotated[str | None, Query(alias="return", max_length=300)] = None,
) -> Response[str]:
    payment = payments.mock_session(session_id)
    return pages.render(
        "mock_checkout.html",
        payment=payment,
        session_id=session_id,
        return_path=pages.local_path(return_path, "/balance"),
        user=pages.page_caller(app),
    )


lambda_handler = entrypoint(app)
