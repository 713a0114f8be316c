"""POST /webhooks/{id}/delete — remove an endpoint from its page."""

from typing import Annotated

from echo_control import developer_webhooks, pages
from echo_control.http import Path, Response, entrypoint

app = pages.page_resolver()


@app.post("/webhooks/<id>/delete", include_in_schema=False)
def delete_webhook_page(id: Annotated[str, Path(max_length=64)]) -> Response[str]:
    who = pages.signed_in(app)
    pages.form(app)
    removed = developer_webhooks.delete_endpoint(who.user_id, id)
    notice = pages.leave_flash(app, notice=f"{removed.url} is removed: nothing more is sent to it.", notice_kind="ok")
    return pages.redirect("/webhooks", cookie=notice)


lambda_handler = entrypoint(app, json_body=False)  # a form post, not JSON
