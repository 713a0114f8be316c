"""GET /connections — the apps a person signed in to with Echo, each with Disconnect."""

from echo_control import connections, pages
from echo_control.http import Response, entrypoint

app = pages.page_resolver()


@app.get("/connections", include_in_schema=False)
def show_connections() -> Response[str]:
    who = pages.signed_in(app)
    return pages.render_page(
        app,
        "connections.html",
        active="connections",
        user=pages.user_view(who),
        connected=connections.connected_apps(who.user_id),
    )


lambda_handler = entrypoint(app)
