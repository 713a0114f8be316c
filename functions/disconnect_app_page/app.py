"""POST /connections/{id}/disconnect — stop a connected app: every token it holds for this person stops at once."""

from typing import Annotated

from echo_control import connections, pages
from echo_control.http import Path, Response, entrypoint

app = pages.page_resolver()


@app.post("/connections/<id>/disconnect", include_in_schema=False)
def disconnect_app_page(id: Annotated[str, Path(max_length=64)]) -> Response[str]:
    who = pages.signed_in(app)
    fields = pages.form(app)
    with pages.form_errors(back="/connections", form="disconnect", values=fields):
        gone = connections.disconnect(who.user_id, id)
    notice = pages.leave_flash(app, notice=f"{gone.name} is disconnected: its access has stopped.", notice_kind="ok")
    return pages.redirect("/connections", cookie=notice)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
