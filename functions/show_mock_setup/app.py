"""GET /setup/mock/{sessionId} — the local stand-in for Stripe Checkout in setup mode (only without a Stripe key)."""

from typing import Annotated

from echo_control import auto_top_up, pages
from echo_control.http import Path, Query, Response, entrypoint, make_resolver

app = make_resolver()


@app.get("/setup/mock/<session_id>", include_in_schema=False)
def show_mock_setup(
    session_id: Annotated[str, Path(max_length=100)],
    return_path: Annotated[str | None, Query(alias="return", max_length=300)] = None,
) -> Response[str]:
    setup = auto_top_up.mock_setup(session_id)
    return pages.render(
        "mock_setup.html",
        setup=setup,
        session_id=session_id,
        cards=auto_top_up.MOCK_CARDS,
        return_path=pages.local_path(return_path, "/balance"),
        user=pages.page_caller(app),
    )


lambda_handler = entrypoint(app)
