"""GET / — the dashboard for a signed-in person, sign-in otherwise."""

from echo_control import pages
from echo_control.http import Response, entrypoint

app = pages.page_resolver()


@app.get("/", include_in_schema=False)
def show_home() -> Response[str]:
    return pages.redirect("/dashboard" if pages.page_caller(app) else "/sign-in")


lambda_handler = entrypoint(app)
