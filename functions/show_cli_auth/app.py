"""GET /cli-auth — where the CLI's login sends a person: pick an app, get a key to paste into the CLI (shown once)."""

from echo_control import apps, pages
from echo_control.http import Response, entrypoint

app = pages.page_resolver()


@app.get("/cli-auth", include_in_schema=False)
def show_cli_auth() -> Response[str]:
    who = pages.signed_in(app)
    return pages.render_page(
        app, "cli_auth.html", user=pages.user_view(who), apps=apps.key_choices(who.user_id), next_path="/cli-auth"
    )


lambda_handler = entrypoint(app)
