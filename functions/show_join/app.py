"""GET /join/{id} — an app's shareable join link: sign in, then one button makes the person's own key for it."""

from typing import Annotated

from echo_control import pages
from echo_control.http import Path, Response, entrypoint

app = pages.page_resolver()


@app.get("/join/<id>", include_in_schema=False)
def show_join(id: Annotated[str, Path(max_length=64)]) -> Response[str]:
    who = pages.signed_in(app)  # not signed in: sign-in first, which comes back here
    return pages.render_page(app, "join.html", **pages.join_page(who, id, f"{pages.base_url(app)}/join/{id}"))


lambda_handler = entrypoint(app)
