"""GET /admin/credit-codes — admins only: the credit codes with their uses, and a form to make one."""

from echo_control import credit_codes, pages
from echo_control.errors import Forbidden
from echo_control.http import Response, entrypoint

app = pages.page_resolver()


@app.get("/admin/credit-codes", include_in_schema=False)
def show_credit_codes() -> Response[str]:
    who = pages.signed_in(app)
    if not who.is_admin:
        raise Forbidden("Only admins may see credit codes")
    return pages.render_page(
        app,
        "credit_codes.html",
        active="credit_codes",
        user=pages.user_view(who),
        codes=credit_codes.list_codes().codes,
    )


lambda_handler = entrypoint(app)
