"""GET /sign-in — email sign-in in dev mode; a link to Clerk's hosted sign-in in production."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from echo_control import config, pages
from echo_control.http import entrypoint

app = pages.page_resolver()


@app.get("/sign-in", include_in_schema=False)
def show_sign_in(
    next_path: Annotated[str | None, Query(alias="next", max_length=pages.MAX_LOCAL_PATH)] = None,
) -> Response[str]:
    return pages.render_page(
        app,
        "sign_in.html",
        mode=config.settings().auth_mode,
        next=pages.local_path(next_path, "/dashboard"),
        clerk_sign_in_url=config.settings().clerk_sign_in_url,
        user=None,
    )


lambda_handler = entrypoint(app)
